/*
 * fcrdns: PTR, then A/AAAA back to the same address (see fcrdns.h).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <ares.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../core/str.h"
#include "../core/xmalloc.h"
#include "fcrdns.h"

#define FCRDNS_TIMEOUT_MS	5000
#define FCRDNS_MAX_NAMES	8

static pthread_once_t fcrdns_once = PTHREAD_ONCE_INIT;
static int fcrdns_lib_ok;

static void
fcrdns_lib_init(void)
{
	fcrdns_lib_ok = ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS;
}

int
fcrdns_suffix_match(const char *name, const char *suffix)
{
	size_t n, s;

	while (*suffix == '.')
		suffix++;
	n = strlen(name);
	s = strlen(suffix);
	if (n > 0 && name[n - 1] == '.')
		n--;
	if (s > 0 && suffix[s - 1] == '.')
		s--;
	if (s == 0 || n < s || strncasecmp(name + n - s, suffix, s) != 0)
		return 0;
	return n == s || name[n - s - 1] == '.';
}

struct fcrdns_ctx {
	int	 done;
	int	 status;
	char	*names[FCRDNS_MAX_NAMES];	/* PTR answers */
	size_t	 nnames;
	int	 confirmed;			/* A/AAAA had the address */
	int	 family;
	unsigned char addr[16];
};

static void
fcrdns_ptr_cb(void *arg, int status, int timeouts, struct hostent *h)
{
	struct fcrdns_ctx *c = arg;

	(void)timeouts;
	c->done = 1;
	c->status = status;
	if (status != ARES_SUCCESS || h == NULL)
		return;
	if (h->h_name != NULL)
		c->names[c->nnames++] = xstrdup(h->h_name);
	for (char **a = h->h_aliases; a != NULL && *a != NULL &&
	    c->nnames < FCRDNS_MAX_NAMES; a++)
		c->names[c->nnames++] = xstrdup(*a);
}

static void
fcrdns_fwd_cb(void *arg, int status, int timeouts, struct hostent *h)
{
	struct fcrdns_ctx *c = arg;
	size_t alen = c->family == AF_INET ? 4 : 16;

	(void)timeouts;
	c->done = 1;
	c->status = status;
	if (status != ARES_SUCCESS || h == NULL || h->h_addrtype != c->family)
		return;
	for (char **a = h->h_addr_list; *a != NULL; a++)
		if (memcmp(*a, c->addr, alen) == 0)
			c->confirmed = 1;
}

/* Run the channel until the callback has run or the deadline passes. */
static void
fcrdns_wait(ares_channel ch, struct fcrdns_ctx *c, const struct timespec *end)
{
	while (!c->done) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		struct timespec now;
		/* unsigned: c-ares's ARES_GETSOCK_WRITABLE shifts a signed 1
		 * by up to 31 (undefined behaviour UBSan reports) */
		unsigned bits = (unsigned)ares_getsock(ch, socks,
		    ARES_GETSOCK_MAXNUM);
		nfds_t n = 0;
		long ms;

		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (end->tv_sec - now.tv_sec) * 1000 +
		    (end->tv_nsec - now.tv_nsec) / 1000000;
		if (ms <= 0) {
			ares_cancel(ch);	/* runs the callback */
			return;
		}
		for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;

			if (bits & (1u << i))
				ev |= POLLIN;
			if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (ev == 0)
				continue;
			pfd[n].fd = socks[i];
			pfd[n].events = ev;
			pfd[n].revents = 0;
			n++;
		}
		if (poll(pfd, n, ms > 100 ? 100 : (int)ms) < 0)
			continue;
		for (nfds_t i = 0; i < n; i++)
			ares_process_fd(ch,
			    pfd[i].revents & (POLLIN | POLLERR | POLLHUP) ?
			    pfd[i].fd : ARES_SOCKET_BAD,
			    pfd[i].revents & POLLOUT ? pfd[i].fd :
			    ARES_SOCKET_BAD);
		/* timeouts of queries without socket events */
		ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	}
}

int
fcrdns_set_servers(ares_channel ch, const struct config *conf)
{
	struct str csv = STR_INIT;
	unsigned char b[16];
	int r;

	if (conf->dns_servers_count == 0)
		return ARES_SUCCESS;
	for (size_t i = 0; i < conf->dns_servers_count; i++) {
		const char *v = conf->dns_servers[i];

		if (i > 0)
			str_append_c(&csv, ',');
		/* c-ares wants a bare IPv6 address in brackets. */
		if (v[0] != '[' && inet_pton(AF_INET6, v, b) == 1)
			str_printf(&csv, "[%s]", v);
		else
			str_append(&csv, v);
	}
	r = ares_set_servers_ports_csv(ch, str_c(&csv));
	str_deinit(&csv);
	return r;
}

static int
fcrdns_channel(const struct config *conf, ares_channel *ch)
{
	struct ares_options opts;
	int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
	char lookups[] = "b";

	pthread_once(&fcrdns_once, fcrdns_lib_init);
	if (!fcrdns_lib_ok)
		return -1;
	memset(&opts, 0, sizeof(opts));
	opts.timeout = 1500;
	opts.tries = 2;
	if (conf->dns_servers_count > 0) {
		opts.lookups = lookups;
		mask |= ARES_OPT_LOOKUPS;
	}
	if (ares_init_options(ch, &opts, mask) != ARES_SUCCESS)
		return -1;
	if (fcrdns_set_servers(*ch, conf) != ARES_SUCCESS) {
		ares_destroy(*ch);
		return -1;
	}
	return 0;
}

int
fcrdns_match(const struct config *conf, const struct sockaddr *sa,
    const char *const *suffixes, size_t nsuffixes, char *name_r, size_t len)
{
	struct fcrdns_ctx ptr;
	struct timespec end;
	ares_channel ch;
	int ret = 0;

	memset(&ptr, 0, sizeof(ptr));
	if (sa->sa_family == AF_INET) {
		ptr.family = AF_INET;
		memcpy(ptr.addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			ptr.family = AF_INET;
			memcpy(ptr.addr, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			ptr.family = AF_INET6;
			memcpy(ptr.addr, &s6->sin6_addr, 16);
		}
	} else
		return 0;
	if (fcrdns_channel(conf, &ch) < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += FCRDNS_TIMEOUT_MS / 1000;

	ares_gethostbyaddr(ch, ptr.addr, ptr.family == AF_INET ? 4 : 16,
	    ptr.family, fcrdns_ptr_cb, &ptr);
	fcrdns_wait(ch, &ptr, &end);
	if (ptr.status != ARES_SUCCESS && ptr.status != ARES_ENOTFOUND &&
	    ptr.status != ARES_ENODATA)
		ret = -1;
	for (size_t i = 0; i < ptr.nnames && ret == 0; i++) {
		int listed = 0;

		for (size_t k = 0; k < nsuffixes && !listed; k++)
			listed = fcrdns_suffix_match(ptr.names[i], suffixes[k]);
		if (!listed)
			continue;
		struct fcrdns_ctx fwd;

		memset(&fwd, 0, sizeof(fwd));
		fwd.family = ptr.family;
		memcpy(fwd.addr, ptr.addr, sizeof(fwd.addr));
		ares_gethostbyname(ch, ptr.names[i], fwd.family, fcrdns_fwd_cb,
		    &fwd);
		fcrdns_wait(ch, &fwd, &end);
		if (fwd.confirmed) {
			snprintf(name_r, len, "%s", ptr.names[i]);
			ret = 1;
		}
	}
	for (size_t i = 0; i < ptr.nnames; i++)
		free(ptr.names[i]);
	ares_destroy(ch);
	return ret;
}
