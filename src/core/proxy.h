/*
 * proxy: parser for the PROXY protocol header, v1 (text) and v2 (binary),
 * as sent by HAProxy and other load balancers
 * (https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt).
 *
 * The caller feeds the bytes read so far; the parser never reads past
 * the header, so what follows it belongs to the session protocol.
 */
#ifndef SEKISHO_PROXY_H
#define SEKISHO_PROXY_H

#include <stddef.h>
#include <sys/socket.h>

/* Largest header we accept: v2's 16 fixed bytes plus TLVs up to this.
 * Longer v2 headers are refused (-1), not read. */
#define PROXY_MAX_HEADER	(16 + 2048)
#define PROXY_V1_MAX		107	/* incl. CRLF, per the spec */

struct proxy_result {
	/* 0: src/dst hold the original client and server addresses.
	 * 1: v2 LOCAL command, or v1 "UNKNOWN", or v2 AF_UNSPEC/AF_UNIX:
	 *    keep the socket's own addresses. */
	int			 local;
	struct sockaddr_storage	 src;
	socklen_t		 srclen;
	struct sockaddr_storage	 dst;
	socklen_t		 dstlen;
	int			 version;	/* 1 or 2 */
};

/*
 * Returns the header's length in bytes (> 0) when buf starts with a
 * complete, valid header; 0 when more bytes are needed (buf is a valid
 * prefix); -1 when buf cannot start a valid header, with *error_r a
 * short static text ("not a PROXY header", "bad v1 address", ...).
 * IPv4 and IPv6 (AF_INET/AF_INET6 in src/dst) for TCP; v2 UDP is refused.
 */
int proxy_parse(const unsigned char *buf, size_t len,
    struct proxy_result *r, const char **error_r);

#endif
