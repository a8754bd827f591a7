/* Cross-thread frees and thousands of short-lived threads.
 * usage: threads ITEMS SHORT_THREADS
 * Phase 1: 2 producers malloc blocks of varying sizes, fill them with a pattern derived from the
 *   item number and hand them, in malloc'd batches of BATCH pointers, through a bounded queue to
 *   2 consumers, which check the pattern and free the blocks and the batch (every free is by a
 *   thread that did not allocate the block). Batching keeps the queue's lock and futex traffic
 *   small next to the allocator's work.
 * Phase 2: SHORT_THREADS threads, at most 64 alive at once, each allocates 64 blocks, frees half
 *   and leaves the other half for the main thread to check and free after joining it.
 * Output depends only on ITEMS and SHORT_THREADS (sums over items), not on scheduling. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRODUCERS 2
#define CONSUMERS 2
#define QUEUE_SLOTS 16
#define BATCH 256
#define WAVE_THREADS 64
#define BLOCKS_PER_THREAD 64

static long items;
static void *queue[QUEUE_SLOTS];
static unsigned head, tail;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER, not_empty = PTHREAD_COND_INITIALIZER;
static int bad;

static size_t size_of(long i) { return 8 + (size_t)((i * 2654435761u) % 3000) + ((i % 97 == 0) ? 70000 : 0); }

struct hdr { long item; size_t size; };

/* A batch: up to BATCH blocks, null-terminated when shorter. */
static void push(void **batch) {
    pthread_mutex_lock(&lock);
    while (tail - head == QUEUE_SLOTS) pthread_cond_wait(&not_full, &lock);
    queue[tail++ % QUEUE_SLOTS] = batch;
    pthread_cond_signal(&not_empty);
    pthread_mutex_unlock(&lock);
}

static void *producer(void *arg) {
    long id = (long)arg;
    void **batch = NULL;
    int fill = 0;
    for (long i = id; i < items; i += PRODUCERS) {
        if (!batch) batch = calloc(BATCH + 1, sizeof(void *));
        size_t n = size_of(i);
        unsigned char *b = malloc(sizeof(struct hdr) + n);
        struct hdr h = {i, n};
        memcpy(b, &h, sizeof h);
        memset(b + sizeof h, (int)(i & 0xff), n);
        batch[fill++] = b;
        if (fill == BATCH) { push(batch); batch = NULL; fill = 0; }
    }
    if (batch) push(batch);
    return NULL;
}

static long consumed;
static unsigned long long sum1;

static void *consumer(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (tail == head && consumed < items) pthread_cond_wait(&not_empty, &lock);
        if (consumed >= items) { pthread_mutex_unlock(&lock); return NULL; }
        void **batch = queue[head++ % QUEUE_SLOTS];
        int n = 0;
        while (n < BATCH && batch[n]) n++;
        consumed += n;
        if (consumed >= items) pthread_cond_broadcast(&not_empty);
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&lock);
        unsigned long long s = 0;
        for (int j = 0; j < n; j++) {
            unsigned char *b = batch[j];
            struct hdr h;
            memcpy(&h, b, sizeof h);
            for (size_t k = 0; k < h.size; k += 61)
                if (b[sizeof h + k] != (unsigned char)(h.item & 0xff)) __atomic_store_n(&bad, 1, __ATOMIC_RELAXED);
            s += (unsigned long long)h.item * h.size;
            free(b);
        }
        free(batch);
        __atomic_fetch_add(&sum1, s, __ATOMIC_RELAXED);
    }
}

struct job { long id; unsigned char *kept[BLOCKS_PER_THREAD / 2]; };

static void *short_lived(void *arg) {
    struct job *j = arg;
    unsigned char *b[BLOCKS_PER_THREAD];
    for (int k = 0; k < BLOCKS_PER_THREAD; k++) {
        size_t n = 16 + (size_t)((j->id * 31 + k * 7) % 500);
        b[k] = malloc(n);
        memset(b[k], (int)(k + j->id) & 0xff, n);
    }
    for (int k = 0; k < BLOCKS_PER_THREAD; k++) {
        if (k % 2) free(b[k]);
        else j->kept[k / 2] = b[k];
    }
    return NULL;
}

int main(int argc, char **argv) {
    items = argc > 1 ? atol(argv[1]) : 100000;
    long shorts = argc > 2 ? atol(argv[2]) : 3000;
    pthread_t p[PRODUCERS], c[CONSUMERS];
    for (long i = 0; i < CONSUMERS; i++) pthread_create(&c[i], NULL, consumer, NULL);
    for (long i = 0; i < PRODUCERS; i++) pthread_create(&p[i], NULL, producer, (void *)i);
    for (int i = 0; i < PRODUCERS; i++) pthread_join(p[i], NULL);
    for (int i = 0; i < CONSUMERS; i++) pthread_join(c[i], NULL);
    printf("phase 1: %ld items, checksum %llu, %s\n", items, sum1, bad ? "CORRUPT" : "patterns intact");

    unsigned long long sum2 = 0;
    long done = 0;
    struct job jobs[WAVE_THREADS];
    pthread_t t[WAVE_THREADS];
    while (done < shorts) {
        int wave = shorts - done < WAVE_THREADS ? (int)(shorts - done) : WAVE_THREADS;
        for (int i = 0; i < wave; i++) {
            jobs[i].id = done + i;
            if (pthread_create(&t[i], NULL, short_lived, &jobs[i]) != 0) { printf("pthread_create failed\n"); return 1; }
        }
        for (int i = 0; i < wave; i++) {
            pthread_join(t[i], NULL);
            for (int k = 0; k < BLOCKS_PER_THREAD / 2; k++) {
                unsigned char v = jobs[i].kept[k][0];
                if (v != (unsigned char)((2 * k + jobs[i].id) & 0xff)) bad = 1;
                sum2 += v;
                free(jobs[i].kept[k]);
            }
        }
        done += wave;
    }
    printf("phase 2: %ld short-lived threads, checksum %llu, %s\n", shorts, sum2, bad ? "CORRUPT" : "patterns intact");
    return bad;
}
