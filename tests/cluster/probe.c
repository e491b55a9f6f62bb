/* The only program of localhost/crucible-executor-noshell:ci, an image with no shell and no
 * Python: the e2e suite drives it by argv, one action after another, to reach every outcome.
 *   /probe out TEXT | err TEXT | sleep SECONDS | alloc | exit N ...
 * out/err write TEXT and a newline to stdout/stderr at once (no buffering), sleep sleeps, alloc
 * touches memory 16 MiB at a time until the kernel kills it, exit ends with status N.
 * Built static by images.sh (gcc -static), like pause.c. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void say(int fd, const char *text) {
  size_t n = strlen(text);
  if (write(fd, text, n) != (ssize_t)n || write(fd, "\n", 1) != 1)
    _exit(120);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *action = argv[i];
    const char *arg = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(action, "alloc") == 0) {
      for (;;) {
        char *block = malloc(16 << 20);
        if (block == NULL)
          return 121;
        memset(block, 1, 16 << 20);
      }
    }
    if (arg == NULL) {
      say(2, "probe: usage: /probe out TEXT | err TEXT | sleep S | alloc | exit N ...");
      return 122;
    }
    if (strcmp(action, "out") == 0)
      say(1, arg);
    else if (strcmp(action, "err") == 0)
      say(2, arg);
    else if (strcmp(action, "sleep") == 0)
      sleep((unsigned)atoi(arg));
    else if (strcmp(action, "exit") == 0)
      return atoi(arg);
    else {
      say(2, "probe: unknown action");
      return 122;
    }
    i++;
  }
  return 0;
}
