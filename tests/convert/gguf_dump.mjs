// gguf_dump.mjs — prints a GGUF file's metadata and tensor table as JSON, parsed by Hugging
// Face's @huggingface/gguf (a third-party reader, independent of tools/gguf_writer.py).
// Used by test_convert.py (case js_reader). Not a test by itself; it checks nothing.
// Usage: node gguf_dump.mjs FILE.gguf
import { gguf } from "@huggingface/gguf";

const r = await gguf(process.argv[2], { allowLocalFile: true });
const out = {
  metadata: r.metadata,
  tensors: r.tensorInfos.map((t) => ({ name: t.name, ne: t.shape, type: t.dtype, offset: t.offset })),
  data_offset: r.tensorDataOffset,
};
// BigInt (u64 fields) -> decimal strings; JSON cannot carry them otherwise.
process.stdout.write(JSON.stringify(out, (k, v) => (typeof v === "bigint" ? v.toString() : v)));
