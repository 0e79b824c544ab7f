/*  jm_sha256.h - SHA-256 (OpenSSL EVP) as 64 lowercase hex digits. */
#ifndef JM_SHA256_H
#define JM_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JM_HASH_HEX 65 /* 64 hex digits + NUL */
/* SHA-256 of the empty input: the empty file is never transferred. */
#define JM_HASH_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct _jm_sha256_t jm_sha256_t;

jm_sha256_t *jm_sha256_new (void);
void jm_sha256_destroy (jm_sha256_t **self_p);
void jm_sha256_update (jm_sha256_t *self, const void *data, size_t size);
/* Writes the hex digest into hex (JM_HASH_EXX bytes); self may be reused
   after jm_sha256_reset. */
void jm_sha256_final (jm_sha256_t *self, char hex[JM_HASH_HEX]);
void jm_sha256_reset (jm_sha256_t *self);

/* One-shot hash of a buffer. */
void jm_sha256_buf (const void *data, size_t size, char hex[JM_HASH_HEX]);
/* Hash a whole file; 0, or -1 with errno set. size_p may be NULL. */
int jm_sha256_file (const char *path, char hex[JM_HASH_HEX], uint64_t *size_p);
/* True if s is exactly 64 lowercase hex digits. */
bool jm_hash_valid (const char *s);

#endif
