/* C-level semantics of the malloc family under LD_PRELOAD=libmanycore_malloc.so.
 * Prints one line per failed check and "semantics: N checks, F failed"; exits 1 if any failed.
 * Also prints which shared object provides malloc (dladdr), so the caller can tell that the
 * preloaded library, not glibc, answered. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks, failed;
#define CHECK(cond)                                                              \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            failed++;                                                            \
            printf("FAILED line %d: %s (errno %d)\n", __LINE__, #cond, errno);   \
        }                                                                        \
    } while (0)

static int aligned(void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

int main(void) {
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (m && dladdr(m, &info) && info.dli_fname)
        printf("malloc provided by %s\n", info.dli_fname);

    /* malloc(0), free(NULL) */
    void *p = malloc(0);
    CHECK(p != NULL);
    free(p);
    free(NULL);

    /* failure: NULL + ENOMEM */
    errno = 0;
    CHECK(malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(PTRDIFF_MAX) == NULL && errno == ENOMEM);

    /* calloc: overflow and zeroing of reused memory */
    errno = 0;
    CHECK(calloc(SIZE_MAX / 2 + 1, 2) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(SIZE_MAX, SIZE_MAX) == NULL && errno == ENOMEM);
    for (size_t size = 8; size <= (1 << 20); size *= 4) {
        for (int round = 0; round < 3; round++) {
            unsigned char *d = malloc(size);
            memset(d, 0xAB, size);
            free(d);
            unsigned char *z = calloc(1, size);
            int zero = z != NULL;
            for (size_t i = 0; z && i < size; i++) zero &= z[i] == 0;
            CHECK(zero);
            free(z);
        }
    }
    p = calloc(0, 10);
    CHECK(p != NULL);
    free(p);

    /* alignment of plain malloc: 16 above 8 bytes, 8 up to 8 */
    int align_ok = 1;
    for (size_t size = 1; size <= 70000; size += (size < 2048 ? 1 : 997)) {
        void *b[4];
        for (int i = 0; i < 4; i++) {
            b[i] = malloc(size);
            if (!b[i] || !aligned(b[i], size > 8 ? 16 : 8)) align_ok = 0;
        }
        for (int i = 0; i < 4; i++) free(b[i]);
    }
    CHECK(align_ok);

    /* malloc_usable_size */
    CHECK(malloc_usable_size(NULL) == 0);
    int usable_ok = 1;
    for (size_t size = 1; size <= (1 << 22); size = size * 3 / 2 + 1) {
        unsigned char *b = malloc(size);
        size_t u = malloc_usable_size(b);
        if (u < size) usable_ok = 0;
        memset(b, 0x5A, u); /* the whole usable size is writable */
        free(b);
    }
    CHECK(usable_ok);

    /* realloc */
    p = realloc(NULL, 10);
    CHECK(p != NULL);
    errno = 0;
    CHECK(realloc(p, 0) == NULL); /* glibc: frees p, returns NULL */
    unsigned char *r = malloc(5);
    memcpy(r, "abcde", 5);
    int keep_ok = 1;
    for (size_t size = 6; size <= (1 << 23); size = size * 2 + 3) {
        r = realloc(r, size);
        if (!r || memcmp(r, "abcde", 5) != 0) keep_ok = 0;
        if (r) r[size - 1] = 1;
    }
    for (size_t size = (1 << 23); size >= 6; size /= 3) {
        r = realloc(r, size);
        if (!r || memcmp(r, "abcde", 5) != 0) keep_ok = 0;
    }
    CHECK(keep_ok);
    errno = 0;
    CHECK(realloc(r, SIZE_MAX) == NULL && errno == ENOMEM);
    CHECK(memcmp(r, "abcde", 5) == 0); /* untouched on failure */
    errno = 0;
    CHECK(reallocarray(r, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    r = reallocarray(r, 100, 4);
    CHECK(r != NULL && memcmp(r, "abcde", 5) == 0);
    free(r);

    /* posix_memalign: EINVAL for bad alignments, out untouched; alignments up to 2 MiB */
    void *sentinel = (void *)0x1234;
    p = sentinel;
    CHECK(posix_memalign(&p, 3, 10) == EINVAL && p == sentinel);
    CHECK(posix_memalign(&p, 4, 10) == EINVAL && p == sentinel);
    CHECK(posix_memalign(&p, 0, 10) == EINVAL && p == sentinel);
    CHECK(posix_memalign(&p, 24, 10) == EINVAL && p == sentinel);
    CHECK(posix_memalign(&p, 64, SIZE_MAX) == ENOMEM && p == sentinel);
    int pm_ok = 1;
    for (size_t a = sizeof(void *); a <= (2u << 20); a *= 2) {
        size_t sizes[] = {0, 1, a / 2 + 1, a, a * 3 + 5, 40000};
        for (int i = 0; i < 6; i++) {
            void *q = NULL;
            if (posix_memalign(&q, a, sizes[i]) != 0 || !aligned(q, a)) pm_ok = 0;
            else if (malloc_usable_size(q) < sizes[i]) pm_ok = 0;
            else memset(q, 1, sizes[i]);
            free(q);
        }
    }
    CHECK(pm_ok);

    /* aligned_alloc: power-of-two alignments; others EINVAL (C17, glibc >= 2.38) */
    p = aligned_alloc(64, 100);
    CHECK(p != NULL && aligned(p, 64));
    free(p);
    p = aligned_alloc(4096, 4096 * 3);
    CHECK(p != NULL && aligned(p, 4096));
    free(p);
    errno = 0;
    CHECK(aligned_alloc(3, 10) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(aligned_alloc(64, SIZE_MAX) == NULL && errno == ENOMEM);

    /* memalign: non-power-of-two rounded up; absurd alignment EINVAL */
    p = memalign(24, 10);
    CHECK(p != NULL && aligned(p, 32));
    free(p);
    p = memalign(1, 10);
    CHECK(p != NULL && aligned(p, 16));
    free(p);
    errno = 0;
    CHECK(memalign(SIZE_MAX, 1) == NULL && errno == EINVAL);

    /* valloc, pvalloc */
    p = valloc(100);
    CHECK(p != NULL && aligned(p, 4096));
    free(p);
    p = pvalloc(1);
    CHECK(p != NULL && aligned(p, 4096) && malloc_usable_size(p) >= 4096);
    free(p);
    p = pvalloc(0);
    CHECK(p != NULL && aligned(p, 4096));
    free(p);
    errno = 0;
    CHECK(pvalloc(SIZE_MAX - 100) == NULL && errno == ENOMEM);

    /* cfree (glibc keeps it only as a compatibility symbol: look it up) */
    void (*cf)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    CHECK(cf != NULL);
    if (cf) {
        cf(malloc(32));
        cf(NULL);
    }

    /* shrinking a large block by realloc gives its pages back: 20 blocks of 64 MiB, each
       filled then shrunk to 100000 bytes, must not leave 1.25 GiB resident */
    {
        void *kept[20];
        int shrink_ok = 1;
        for (int i = 0; i < 20; i++) {
            char *b = malloc(64 << 20);
            if (!b) { shrink_ok = 0; break; }
            memset(b, i + 1, 64 << 20);
            b = realloc(b, 100000);
            if (!b || b[99999] != (char)(i + 1)) shrink_ok = 0;
            kept[i] = b;
        }
        long rss_kib = -1;
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        while (f && fgets(line, sizeof line, f))
            if (strncmp(line, "VmRSS:", 6) == 0) rss_kib = atol(line + 6);
        if (f) fclose(f);
        CHECK(shrink_ok);
        CHECK(rss_kib > 0 && rss_kib < 200 * 1024);
        for (int i = 0; i < 20; i++) free(kept[i]);
    }

    /* dlsym of a missing symbol: glibc allocates its dlerror state through malloc, from inside
       the dynamic linker's lock */
    for (int i = 0; i < 3; i++) {
        CHECK(dlsym(RTLD_DEFAULT, "manycore_no_such_symbol") == NULL);
        const char *e = dlerror();
        CHECK(e != NULL && strstr(e, "manycore_no_such_symbol") != NULL);
    }

    CHECK(malloc_trim(0) >= 0);

    printf("semantics: %d checks, %d failed\n", checks, failed);
    return failed != 0;
}
