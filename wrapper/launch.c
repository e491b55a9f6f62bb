/* crucible-launch: starts the wrapper bundle (wrapper/bundle.py) in any executor image.
 *
 *   /crucible/bin/crucible-launch WRAPPER-ARGS...
 * runs
 *   DIR/ld.so --inhibit-cache --library-path DIR/lib DIR/python -I -S -c 'from wrapper import boot'
 *     N SAVED-1 .. SAVED-N WRAPPER-ARGS...
 * with DIR the directory of argv[0]. Static, so no loader of the image runs it. The loader reads
 * LD_PRELOAD, LD_AUDIT, GLIBC_TUNABLES and the like from the environment even when invoked
 * directly: an image that sets them would load its code into the wrapper. They are taken out of
 * the loader's environment and handed to wrapper/boot.py as arguments, which puts them back
 * before the wrapper starts, so user code still gets the environment unchanged. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* glibc's "unsecure" variables (ignored by setuid programs), on top of every LD_*. */
static const char *const loader_names[] = {
    "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH",
    "MALLOC_TRACE", "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TZDIR", NULL,
};

static int steers_loader(const char *entry) {
    if (strncmp(entry, "LD_", 3) == 0)
        return 1;
    for (const char *const *name = loader_names; *name; name++) {
        size_t n = strlen(*name);
        if (strncmp(entry, *name, n) == 0 && entry[n] == '=')
            return 1;
    }
    return 0;
}

int main(int argc, char **argv, char **envp) {
    static char dir[PATH_MAX - 16], loader[PATH_MAX], libs[PATH_MAX], python[PATH_MAX], count[24];
    const char *slash = argv[0] ? strrchr(argv[0], '/') : NULL;
    if (!slash || (size_t)(slash - argv[0]) >= sizeof dir - 16) {
        fputs("crucible-launch: run me by my absolute path\n", stderr);
        return 126;
    }
    memcpy(dir, argv[0], (size_t)(slash - argv[0]));
    snprintf(loader, sizeof loader, "%s/ld.so", dir);
    snprintf(libs, sizeof libs, "%s/lib", dir);
    snprintf(python, sizeof python, "%s/python", dir);

    size_t nenv = 0, saved = 0;
    while (envp[nenv])
        nenv++;
    char *clean[nenv + 1], *kept[nenv + 1];
    size_t nclean = 0;
    for (size_t i = 0; i < nenv; i++) {
        if (steers_loader(envp[i]))
            kept[saved++] = envp[i];
        else
            clean[nclean++] = envp[i];
    }
    clean[nclean] = NULL;
    snprintf(count, sizeof count, "%zu", saved);

    const char *head[] = {loader, "--inhibit-cache", "--library-path", libs, python,
                          "-I", "-S", "-c", "from wrapper import boot", count};
    size_t nhead = sizeof head / sizeof head[0], n = 0;
    char *args[nhead + saved + (size_t)argc];
    for (size_t i = 0; i < nhead; i++)
        args[n++] = (char *)head[i];
    for (size_t i = 0; i < saved; i++)
        args[n++] = kept[i];
    for (int i = 1; i < argc; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    execve(loader, args, clean);
    perror("crucible-launch: execve ld.so");
    return 127;
}
