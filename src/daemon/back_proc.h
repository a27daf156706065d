/*
 * back_proc: the back side's process (back_proc.c) and the control
 * messages the master sends it over its channel (struct msg on
 * SOCK_SEQPACKET).
 */
#ifndef SEKISHO_BACK_PROC_H
#define SEKISHO_BACK_PROC_H

struct config;

enum back_proc_ctl_type {
	BACK_PROC_CTL_READY = 1, /* back -> master: u32 ok, str error */
	BACK_PROC_CTL_CHANNEL,	/* u32 slot; fd: a session channel's end */
	BACK_PROC_CTL_RELOAD,	/* str path; fd: memfd with the file's text */
	BACK_PROC_CTL_STOP,
};

/* The back side, its privileges already dropped by the master: starts
 * the queue and the workers, says READY (or why not) on ctl, serves
 * until STOP or the master's end, then exits. */
void back_proc_main(const struct config *conf, int ctl)
    __attribute__((noreturn));

#endif
