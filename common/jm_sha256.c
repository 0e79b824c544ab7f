/*  jm_sha256.c - SHA-256 through OpenSSL's EVP interface. */
#include "jm_sha256.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JM_SHA256_BUF (1024 * 1024)

struct _jm_sha256_t {
    EVP_MD_CTX *ctx;
};

jm_sha256_t *
jm_sha256_new (void)
{
    jm_sha256_t *self = calloc (1, sizeof *self);
    assert (self);
    self->ctx = EVP_MD_CTX_new ();
    assert (self->ctx);
    int rc = EVP_DigestInit_ex (self->ctx, EVP_sha256 (), NULL);
    assert (rc == 1);
    (void)rc;
    return self;
}

void
jm_sha256_destroy (jm_sha256_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        EVP_MD_CTX_free ((*self_p)->ctx);
        free (*self_p);
        *self_p = NULL;
    }
}

void
jm_sha256_update (jm_sha256_t *self, const void *data, size_t size)
{
    assert (self);
    if (size > 0) {
        int rc = EVP_DigestUpdate (self->ctx, data, size);
        assert (rc == 1);
        (void)rc;
    }
}

static void
s_to_hex (const unsigned char *md, unsigned len, char hex[JM_HASH_HEX])
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < len && i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = 0;
}

void
jm_sha256_final (jm_sha256_t *self, char hex[JM_HASH_HEX])
{
    assert (self);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    int rc = EVP_DigestFinal_ex (self->ctx, md, &len);
    assert (rc == 1 && len == 32);
    (void)rc;
    s_to_hex (md, len, hex);
}

void
jm_sha256_reset (jm_sha256_t *self)
{
    assert (self);
    int rc = EVP_DigestInit_ex (self->ctx, EVP_sha256 (), NULL);
    assert (rc == 1);
    (void)rc;
}

void
jm_sha256_buf (const void *data, size_t size, char hex[JM_HASH_HEX])
{
    jm_sha256_t *h = jm_sha256_new ();
    jm_sha256_update (h, data, size);
    jm_sha256_final (h, hex);
    jm_sha256_destroy (&h);
}

int
jm_sha256_file (const char *path, char hex[JM_HASH_HEX], uint64_t *size_p)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char *buf = malloc (JM_SHA256_BUF);
    if (!buf) {
        close (fd);
        errno = ENOMEM;
        return -1;
    }
    jm_sha256_t *h = jm_sha256_new ();
    uint64_t total = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read (fd, buf, JM_SHA256_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        jm_sha256_update (h, buf, (size_t)n);
        total += (uint64_t)n;
    }
    int saved = errno;
    if (rc == 0) {
        jm_sha256_final (h, hex);
        if (size_p)
            *size_p = total;
    }
    jm_sha256_destroy (&h);
    free (buf);
    close (fd);
    errno = saved;
    return rc;
}

bool
jm_hash_valid (const char *s)
{
    if (!s)
        return false;
    size_t i;
    for (i = 0; s[i]; i++) {
        if (i >= 64)
            return false;
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return i == 64;
}
