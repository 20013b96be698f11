/* Probes the sandbox: tries to read a host file and list a directory, and reports the
 * environment it sees. weir grants no filesystem and only the environment variables the
 * function declares. (socket.c tries the network.) */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

int main(void) {
    FILE *f = fopen("/etc/passwd", "r");
    int file_errno = f ? 0 : errno;
    DIR *d = opendir("/");
    int env_count = 0;
    for (char **e = environ; e && *e; e++) env_count++;
    const char *greeting = getenv("GREETING");
    printf("{\"status\":200,\"body\":{\"file_opened\":%s,\"file_errno\":%d,\"dir_opened\":%s,"
           "\"env_count\":%d,\"greeting\":\"%s\"}}\n",
           f ? "true" : "false", file_errno, d ? "true" : "false", env_count,
           greeting ? greeting : "");
    return 0;
}
