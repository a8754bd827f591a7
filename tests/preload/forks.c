/* fork() while other threads are inside the allocator; the child allocates.
 * usage: forks FORKS
 * 3 background threads malloc/realloc/free without pause. The main thread forks FORKS times;
 * each child allocates and frees in a loop, starts a thread that allocates, checks its data
 * and exits 0 (or 1 on a mismatch). A deadlock in the child hangs the program (the caller
 * applies a timeout). Output depends only on FORKS. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;

static void *churn(void *arg) {
    long id = (long)arg;
    void *keep[256] = {0};
    unsigned long x = (unsigned long)id * 7919 + 1;
    while (!stop) {
        x = x * 6364136223846793005ul + 1442695040888963407ul;
        int k = (int)((x >> 33) % 256);
        size_t n = 8 + (size_t)((x >> 17) % (k < 8 ? 200000 : 2000));
        if (keep[k] && (x & 4)) keep[k] = realloc(keep[k], n);
        else { free(keep[k]); keep[k] = malloc(n); }
        memset(keep[k], 1, 8);
    }
    for (int k = 0; k < 256; k++) free(keep[k]);
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    long s = 0;
    for (int i = 0; i < 2000; i++) {
        char *b = malloc(32 + i % 300);
        b[0] = (char)i;
        s += b[0];
        free(b);
    }
    return (void *)s;
}

static int child(int n) {
    char *b[500];
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 500; i++) {
            b[i] = malloc(16 + (size_t)((i * 37 + n) % 5000));
            memset(b[i], i & 0xff, 16);
        }
        for (int i = 0; i < 500; i++) {
            if (b[i][15] != (char)(i & 0xff)) return 1;
            free(b[i]);
        }
    }
    void *big = malloc(8 << 20);
    memset(big, 2, 8 << 20);
    free(big);
    pthread_t t;
    void *r;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0) return 1;
    pthread_join(t, &r);
    long expect = 0;
    for (int i = 0; i < 2000; i++) expect += (char)i;
    return (long)r == expect ? 0 : 1;
}

int main(int argc, char **argv) {
    int forks = argc > 1 ? atoi(argv[1]) : 200;
    pthread_t t[3];
    for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, churn, (void *)i);
    int ok = 0;
    for (int n = 0; n < forks; n++) {
        void *mine = malloc(100 + n);
        pid_t pid = fork();
        if (pid < 0) { printf("fork failed\n"); return 1; }
        if (pid == 0) {
            free(mine);
            _exit(child(n));
        }
        free(mine);
        int st;
        if (waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++;
    }
    stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    printf("forks: %d, children that allocated correctly: %d\n", forks, ok);
    return ok != forks;
}
