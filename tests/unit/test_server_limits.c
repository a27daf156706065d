/*
 * test_server_limits: the connection counts shared by the session
 * processes (src/daemon/limits.c): the total, the per-address limit, and the table
 * staying consistent through many addresses, collisions and releases in
 * any order (entries are removed by backward shift, no tombstones).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "daemon/limits.h"
#include "unit.h"

static struct sockaddr_in
addr4(uint32_t host)
{
	struct sockaddr_in s;

	memset(&s, 0, sizeof(s));
	s.sin_family = AF_INET;
	s.sin_addr.s_addr = htonl(host);
	return s;
}

static void
test_total(struct config *conf)
{
	conf->max_connections = 3;
	UNIT_CHECK_INT(limits_conn_acquire(conf), 0);
	UNIT_CHECK_INT(limits_conn_acquire(conf), 0);
	UNIT_CHECK_INT(limits_conn_acquire(conf), 0);
	UNIT_CHECK_INT(limits_conn_acquire(conf), -1);
	limits_conn_release();
	UNIT_CHECK_INT(limits_conn_acquire(conf), 0);
	UNIT_CHECK_INT(limits_conn_acquire(conf), -1);
	for (int i = 0; i < 3; i++)
		limits_conn_release();
	UNIT_CHECK_INT(limits_conn_acquire(conf), 0);
	limits_conn_release();
}

static void
test_per_address(struct config *conf)
{
	struct sockaddr_in a = addr4(0xc0000201), b = addr4(0xc0000202);
	struct sockaddr_in6 m;

	conf->max_connections_per_ip = 2;
	UNIT_CHECK_INT(limits_ip_acquire(conf, (struct sockaddr *)&a), 0);
	UNIT_CHECK_INT(limits_ip_acquire(conf, (struct sockaddr *)&a), 0);
	UNIT_CHECK_INT(limits_ip_acquire(conf, (struct sockaddr *)&a), -1);
	UNIT_CHECK_INT(limits_ip_acquire(conf, (struct sockaddr *)&b), 0);
	/* ::ffff:192.0.2.1 is 192.0.2.1 */
	memset(&m, 0, sizeof(m));
	m.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:192.0.2.1", &m.sin6_addr);
	UNIT_CHECK_INT(limits_ip_acquire(conf, (struct sockaddr *)&m), -1);
	limits_ip_release((struct sockaddr *)&m);
	UNIT_CHECK_INT(limits_ip_acquire(conf, (struct sockaddr *)&a), 0);
	limits_ip_release((struct sockaddr *)&a);
	limits_ip_release((struct sockaddr *)&a);
	limits_ip_release((struct sockaddr *)&b);
	UNIT_CHECK_INT(limits_ip_acquire(conf, (struct sockaddr *)&b), 0);
	UNIT_CHECK_INT(limits_ip_acquire(conf, (struct sockaddr *)&b), 0);
	UNIT_CHECK_INT(limits_ip_acquire(conf, (struct sockaddr *)&b), -1);
	limits_ip_release((struct sockaddr *)&b);
	limits_ip_release((struct sockaddr *)&b);
}

/* Many addresses (the table's probe runs collide), released in a shuffled
 * order: every address must still count exactly. */
static void
test_many(struct config *conf)
{
	enum { N = 900 };
	static uint32_t order[N];
	int bad = 0;

	conf->max_connections_per_ip = 1;
	for (int i = 0; i < N; i++) {
		struct sockaddr_in a = addr4(0x0a000000u + (uint32_t)i * 7919u);

		order[i] = (uint32_t)i;
		bad += limits_ip_acquire(conf, (struct sockaddr *)&a) != 0;
	}
	UNIT_CHECK_INT(bad, 0);
	srand(1);
	for (int i = N - 1; i > 0; i--) {
		int j = rand() % (i + 1);
		uint32_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	/* release half: those must be free again, the others still full */
	for (int i = 0; i < N / 2; i++) {
		struct sockaddr_in a = addr4(0x0a000000u + order[i] * 7919u);

		limits_ip_release((struct sockaddr *)&a);
	}
	bad = 0;
	for (int i = 0; i < N; i++) {
		struct sockaddr_in a = addr4(0x0a000000u + order[i] * 7919u);
		int r = limits_ip_acquire(conf, (struct sockaddr *)&a);

		bad += i < N / 2 ? r != 0 : r != -1;
	}
	UNIT_CHECK_INT(bad, 0);
	for (int i = 0; i < N; i++) {
		struct sockaddr_in a = addr4(0x0a000000u + order[i] * 7919u);

		limits_ip_release((struct sockaddr *)&a);
	}
	bad = 0;
	for (int i = 0; i < N; i++) {
		struct sockaddr_in a = addr4(0x0a000000u + (uint32_t)i * 7919u);

		bad += limits_ip_acquire(conf, (struct sockaddr *)&a) != 0;
		limits_ip_release((struct sockaddr *)&a);
	}
	UNIT_CHECK_INT(bad, 0);
}

int
main(void)
{
	struct config *conf = config_defaults();

	/* the first call makes the table for max_connections */
	conf->max_connections = 1000;
	test_per_address(conf);
	test_many(conf);
	test_total(conf);
	config_free(&conf);
	UNIT_END();
}
