#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static _Noreturn void cli_error(void (*usage)(FILE *), const char *fmt, const char *a,
                                const char *b) {
  fprintf(stderr, "error: ");
  fprintf(stderr, fmt, a, b);
  fprintf(stderr, "\n");
  usage(stderr);
  exit(2);
}

int cli_parse(int argc, char **argv, const cli_option *options, size_t option_count,
              void (*usage)(FILE *out)) {
  int i = 1;
  while (i < argc && !strncmp(argv[i], "--", 2)) {
    if (!strcmp(argv[i], "--help")) {
      usage(stdout);
      exit(0);
    }
    const cli_option *opt = NULL;
    for (size_t k = 0; k < option_count; k++)
      if (!strcmp(argv[i], options[k].name)) opt = &options[k];
    if (!opt) cli_error(usage, "unknown option %s%s", argv[i], "");
    if (opt->type == CLI_FLAG) {
      *(int *)opt->value = 1;
      i++;
      continue;
    }
    if (i + 1 >= argc) cli_error(usage, "option %s needs a value%s", argv[i], "");
    const char *text = argv[i + 1];
    if (opt->type == CLI_STRING) {
      *(const char **)opt->value = text;
    } else {
      char *end = NULL;
      errno = 0;
      long v = strtol(text, &end, 10);
      if (errno || end == text || *end != '\0')
        cli_error(usage, "option %s: '%s' is not an integer", argv[i], text);
      if (v < opt->min || v > opt->max)
        cli_error(usage, "option %s: %s is out of range", argv[i], text);
      *(int *)opt->value = (int)v;
    }
    i += 2;
  }
  return i;
}
