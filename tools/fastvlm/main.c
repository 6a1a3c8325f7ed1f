/*
 * main.c — `fastvlm`, the command-line face of libfastvlm: dispatches to one subcommand
 * per file (cmd_<name>.c). `fastvlm help` lists them.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} cli_command;

static const cli_command commands[] = {
#ifdef FVLM_HAVE_CMD_INFO
    {"info", cmd_info, "print a GGUF file's metadata and tensor table"},
#endif
#ifdef FVLM_HAVE_CMD_TOKENIZE
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
#endif
#ifdef FVLM_HAVE_CMD_GENERATE
    {"generate", cmd_generate, "generate text from a prompt (streams)"},
#endif
#ifdef FVLM_HAVE_CMD_LOGITS
    {"logits", cmd_logits, "write the raw logits of a token sequence"},
#endif
#ifdef FVLM_HAVE_CMD_RUN
    {"run", cmd_run, "answer a question about an image"},
#endif
#ifdef FVLM_HAVE_CMD_VISION
    {"vision", cmd_vision, "write vision tower / projector features of an image"},
#endif
#ifdef FVLM_HAVE_CMD_BENCH
    {"bench", cmd_bench, "measure load, vision, prefill and decode speed"},
#endif
#ifdef FVLM_HAVE_CMD_QUANTIZE
    {"quantize", cmd_quantize, "re-quantize a GGUF by a per-component plan"},
#endif
};

static void usage(FILE *f)
{
    fprintf(f, "usage: fastvlm <command> [options]   (fastvlm <command> --help)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("fastvlm %d.%d.%d\n", FASTVLM_VERSION_MAJOR, FASTVLM_VERSION_MINOR,
               FASTVLM_VERSION_PATCH);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "fastvlm: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
