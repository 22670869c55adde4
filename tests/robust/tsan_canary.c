/* tsan_canary.c - proves that the ThreadSanitizer tree sees races in OpenMP
 * code: without an argument, two threads write one counter unsynchronised
 * (the test expects TSan's report); with "clean", the same work through a
 * reduction and a barrier must pass silently (Archer makes libomp's
 * synchronisation visible to TSan). Built only in the TSan tree. */
#include <omp.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    int clean = argc > 1 && strcmp(argv[1], "clean") == 0;
    long counter = 0, partial[2] = {0, 0};
    omp_set_num_threads(2);
    if (clean) {
#pragma omp parallel reduction(+ : counter)
        {
            partial[omp_get_thread_num() & 1] = omp_get_thread_num() + 1;
            for (int i = 0; i < 1000; i++)
                counter++;
#pragma omp barrier
#pragma omp single
            counter += partial[0] + partial[1];
        }
    } else {
#pragma omp parallel
        for (int i = 0; i < 1000; i++)
            counter++;
    }
    printf("counter %ld\n", counter);
    return 0;
}
