/*
 * fcrdns: forward-confirmed reverse DNS of a client address, for the
 * trusted relay names of the overseas rule (docs/policy.md): a
 * subscriber who sends through a foreign service in their own name
 * (Gmail's "send mail as" with our server) comes from that service's
 * servers abroad. A name is believed only if the address's PTR name ends
 * in a listed suffix AND that name's A/AAAA records include the address.
 *
 * Blocking (up to a few seconds): back side only. DNS servers are
 * `dns_servers` when set, else the system's.
 */
#ifndef SEKISHO_FCRDNS_H
#define SEKISHO_FCRDNS_H

#include <ares.h>
#include <stddef.h>
#include <sys/socket.h>

struct config;

/*
 * 1 when sa's confirmed name ends in one of the suffixes (name_r gets
 * it), 0 when not, -1 when DNS failed (no answer in time).
 */
int fcrdns_match(const struct config *conf, const struct sockaddr *sa,
    const char *const *suffixes, size_t nsuffixes, char *name_r,
    size_t len);

/* Point ch at `dns_servers` when set (c-ares's "[v6]" form for a bare
 * IPv6 address); an ARES_ status, ARES_SUCCESS when none are set. Shared
 * with the MTA's resolver. */
int fcrdns_set_servers(ares_channel ch, const struct config *conf);

/* 1 when name is suffix or ends with "." suffix (case-insensitive;
 * a leading or trailing dot on either is ignored). */
int fcrdns_suffix_match(const char *name, const char *suffix);

#endif
