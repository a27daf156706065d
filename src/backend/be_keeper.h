/*
 * be_keeper: the back side's periodic work on the state the nodes share
 * (store.h, schema step 5): renewing this node's POP3 mailbox leases
 * while their sessions live, and sweeping what has expired (settings
 * page sessions, leases of nodes that died, POP-before-SMTP windows).
 *
 * One thread with its own store handle, started by the first request
 * that needs it (so it runs in whichever process serves the back side).
 * It copies what it needs from the config and never stops on its own:
 * it ends with the process, and a node that dies simply stops renewing,
 * which is what lets the other nodes take its mailboxes over.
 */
#ifndef SEKISHO_BE_KEEPER_H
#define SEKISHO_BE_KEEPER_H

#include <stdint.h>

struct config;
struct store;

/* Start the thread once per process; later calls do nothing. */
void be_keeper_start(const struct config *conf);

/* SIGHUP: the retention periods and batch of the new config apply from
 * the next sweep, which comes at once. */
void be_keeper_reload(const struct config *conf);

/* Wake the thread now (be_mailbox_abandon: leases to give back). */
void be_keeper_poke(void);

/* This node's name in leases: "HOSTNAME:PID", unique per running
 * daemon (two nodes on one host differ by pid). */
const char *be_keeper_node(void);

/* be_mailbox.c: renew the leases of this node's open mailboxes until
 * expires; a lease found lost is marked so its session cannot commit. */
void be_mailbox_renew(struct store *st, int64_t expires);

#endif
