/*  fuzz_proto.c - fuzz target for the message decoder.

    libFuzzer:  clang -fsanitize=fuzzer,address -DJM_LIBFUZZER ... tests/fuzz_proto.c
                ./fuzz_proto tests/fuzz_corpus
    Plain build (CMake's fuzz_proto): replays every file named on the command
    line, or every file in a named directory, through the same function.

    Whatever the input, decoding must not crash or leak; a message that
    decodes must re-encode, and that encoding must decode to a message
    whose encoding is byte-for-byte the same.
*/
#include "jm_proto.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    jm_msg_t *msg = NULL;
    char err[512];
    uint64_t peer_version = 0;
    int rc = jm_msg_decode (data, size, &msg, &peer_version, err, sizeof err);
    if (rc != 0) {
        if (msg || rc < JM_PROTO_EVALUE || rc > 0 || err[0] == 0)
            abort ();
        return 0;
    }
    if (!msg)
        abort ();
    uint8_t *enc1 = NULL, *enc2 = NULL;
    size_t n1 = 0, n2 = 0;
    if (jm_msg_encode (msg, &enc1, &n1, err, sizeof err) != 0) {
        /* everything the decoder accepts is within the encoder's limits */
        fprintf (stderr, "fuzz_proto: decoded message does not re-encode: %s\n", err);
        abort ();
    }
    jm_msg_t *again = NULL;
    if (jm_msg_decode (enc1, n1, &again, NULL, err, sizeof err) != 0) {
        fprintf (stderr, "fuzz_proto: re-encoded message does not decode: %s\n", err);
        abort ();
    }
    if (again->id != msg->id || jm_msg_encode (again, &enc2, &n2, err, sizeof err) != 0 ||
        n1 != n2 || memcmp (enc1, enc2, n1) != 0) {
        fprintf (stderr, "fuzz_proto: encoding is not stable across a round trip\n");
        abort ();
    }
    free (enc1);
    free (enc2);
    jm_msg_destroy (&again);
    jm_msg_destroy (&msg);
    return 0;
}

#ifndef JM_LIBFUZZER
static int
run_file (const char *path)
{
    FILE *fp = fopen (path, "rb");
    if (!fp) {
        perror (path);
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc (cap);
    size_t got;
    while (buf && (got = fread (buf + len, 1, cap - len, fp)) > 0) {
        len += got;
        if (len == cap) {
            uint8_t *nb = realloc (buf, cap * 2);
            if (!nb) {
                free (buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose (fp);
    if (!buf) {
        fprintf (stderr, "fuzz_proto: %s: out of memory\n", path);
        return -1;
    }
    /* exact-size copy so that AddressSanitizer catches any over-read */
    uint8_t *exact = malloc (len ? len : 1);
    if (len)
        memcpy (exact, buf, len);
    free (buf);
    LLVMFuzzerTestOneInput (exact, len);
    free (exact);
    return 0;
}

int
main (int argc, char **argv)
{
    if (argc < 2) {
        fprintf (stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    int files = 0, errors = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat (argv[i], &st) != 0) {
            perror (argv[i]);
            errors++;
            continue;
        }
        if (!S_ISDIR (st.st_mode)) {
            errors += run_file (argv[i]) != 0;
            files++;
            continue;
        }
        DIR *dir = opendir (argv[i]);
        if (!dir) {
            perror (argv[i]);
            errors++;
            continue;
        }
        struct dirent *de;
        while ((de = readdir (dir))) {
            if (de->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf (path, sizeof path, "%s/%s", argv[i], de->d_name);
            if (stat (path, &st) == 0 && S_ISREG (st.st_mode)) {
                errors += run_file (path) != 0;
                files++;
            }
        }
        closedir (dir);
    }
    printf ("fuzz_proto: %d inputs run, %d unreadable\n", files, errors);
    return errors ? 1 : 0;
}
#endif
