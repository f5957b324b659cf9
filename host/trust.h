/*
 * host/trust.h -- trusted public keys and signature checks (mh_tru_*).
 */
#ifndef MH_HOST_TRUST_H
#define MH_HOST_TRUST_H

#include <stdbool.h>
#include <stddef.h>

#include "modhost.h"

struct mh_host;

/* The host's trusted keys, from mh_config.trust or $MODHOST_TRUST
 * (';'-separated PEM public key files, Ed25519, each by an absolute
 * path and opened as code files are; a file may hold several keys, each
 * trusted).  A file that cannot be read or holds anything but Ed25519
 * public keys fails host creation: a typo in a trust setting must never silently mean "trust
 * nothing".  Errors begin with `from`, where the keys were named. */
typedef struct mh_trust {
    void **keys;      /* EVP_PKEY * */
    size_t n;
} mh_trust;

mh_status mh_tru_load(struct mh_host *h, const char *spec,
                      const char *from, mh_trust *t, mh_error **err);
void mh_tru_free(struct mh_host *h, mh_trust *t);

/* Is sig a valid Ed25519 signature of data by one of the keys? */
bool mh_tru_verify(const mh_trust *t, const void *data, size_t len,
                   const void *sig, size_t sig_len);

#endif /* MH_HOST_TRUST_H */
