/* A stand-in for seed 003's Go binary (Escala de Plantão), built offline by the tests: one static executable
 * that serves /health and /version (the version it was built with) on PORT (from the unit's environment file;
 * default 8080) until systemd stops it. Single-threaded, HTTP/1.0, enough for a health gate. */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef VERSION
#define VERSION "dev"
#endif

static void answer(int fd, const char *status, const char *body) {
    char out[512];
    int n = snprintf(out, sizeof out, "HTTP/1.0 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s", status, strlen(body), body);
    if (write(fd, out, (size_t)n) < 0) perror("write");
}

int main(void) {
    const char *port = getenv("PORT");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port ? port : "8080")),
                               .sin_addr.s_addr = htonl(INADDR_ANY)};
    int one = 1, srv = socket(AF_INET, SOCK_STREAM, 0);
    signal(SIGPIPE, SIG_IGN);
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (srv < 0 || bind(srv, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(srv, 64) < 0) {
        perror("escala-plantao: listen");
        return 1;
    }
    printf("escala-plantao %s listening on %s\n", VERSION, port ? port : "8080");
    fflush(stdout);
    for (;;) {
        char req[1024] = {0};
        int fd = accept(srv, NULL, NULL);
        if (fd < 0) continue;
        if (read(fd, req, sizeof req - 1) > 0) {
            if (strncmp(req, "GET /health ", 12) == 0) answer(fd, "200 OK", "ok\n");
            else if (strncmp(req, "GET /version ", 13) == 0) answer(fd, "200 OK", VERSION);
            else answer(fd, "404 Not Found", "not found\n");
        }
        close(fd);
    }
}
