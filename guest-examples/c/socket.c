/* Hostile: tries to use the network by accepting on a socket. A WASI preview1 module has
 * no way to create sockets and weir preopens none; the adapter traps, and the step fails. */
#include <stdio.h>
#include <sys/socket.h>

int main(void) {
    int fd = accept(3, NULL, NULL);
    printf("{\"status\":200,\"body\":{\"accepted\":%s}}\n", fd >= 0 ? "true" : "false");
    return 0;
}
