/*
 * The audit log (docs/appliance.md §6): hash-chained entries, each signed by the identity key,
 * the most recent AUDIT_KEEP kept in a ring, and a signed log head that binds the host's nonce.
 */
#ifndef FW_AUDIT_H
#define FW_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "cbor.h"

#define AUDIT_KEEP 256
#define AUDIT_BODY_MAX 512
#define AUDIT_SUMMARY_MAX 200 /* bytes of summary text kept in an entry */
#define AUDIT_NONCE_MAX 32

typedef struct {
    uint16_t body_len;
    uint8_t body[AUDIT_BODY_MAX];
    uint8_t sig[64];
} audit_entry;

typedef struct {
    audit_entry ring[AUDIT_KEEP]; /* entry seq s lives at ring[s % AUDIT_KEEP] */
    uint64_t count;               /* entries ever written */
    uint64_t acked;               /* entries below this seq were read (ack) */
    uint8_t last[32];             /* BLAKE2s-256 of the newest body; zero when empty */
} audit_log;

void audit_reset(audit_log *log);

/* Appends one entry signed with the identity key (libsodium 64-byte secret key). key and
 * sighash may be NULL; summary is cut at AUDIT_SUMMARY_MAX bytes on a character boundary and
 * must be valid UTF-8 (anything else is escaped). Returns 0, -1 if the body does not fit. */
int audit_append(audit_log *log, const uint8_t identity_sk[64], uint64_t time,
                 const char *event, const char *verdict, const uint8_t *key,
                 const uint8_t *sighash, const char *summary);

uint64_t audit_oldest(const audit_log *log);  /* seq of the oldest kept entry */
uint64_t audit_unread(const audit_log *log);  /* seq of the oldest unread kept entry */
/* 1 when the next entry would overwrite an unread one (force_audit refuses to sign then). */
int audit_full(const audit_log *log);
/* The entry with that seq, NULL if it is not kept. */
const audit_entry *audit_get(const audit_log *log, uint64_t seq);
/* Marks entries up to and including seq as read. -1 if seq was never written. */
int audit_ack(audit_log *log, uint64_t seq);

/* Writes the signed log head {"body": bytes, "sig": bytes64} with the host's nonce. */
void audit_write_head(const audit_log *log, const uint8_t identity_sk[64], const uint8_t *nonce,
                      size_t nonce_len, cbor_writer *w);

/* Recomputes `last` after the ring was loaded from flash. */
void audit_loaded(audit_log *log);

extern const char AUDIT_ENTRY_DOMAIN[];   /* "tka-appliance audit v1\0" */
extern const char AUDIT_HEAD_DOMAIN[];    /* "tka-appliance log-head v1\0" */
#define AUDIT_ENTRY_DOMAIN_LEN 23
#define AUDIT_HEAD_DOMAIN_LEN 26

#endif
