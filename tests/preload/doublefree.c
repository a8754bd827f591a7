/* Frees one block twice (argv[1] = "double") or frees a stack address ("invalid").
 * Under the checked build the second free must abort with a message naming the pointer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "double";
    char *p = malloc(48);
    printf("freeing %p\n", (void *)p);
    fflush(stdout);
    free(p);
    if (strcmp(what, "double") == 0) {
        free(p);
    } else {
        char local[64];
        free(local + 16);
    }
    printf("survived\n");
    return 0;
}
