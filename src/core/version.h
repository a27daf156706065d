/*
 * version: the one place the release number is written (sekisho version,
 * sekisho status, the metrics' sekisho_build_info).
 */
#ifndef SEKISHO_VERSION_H
#define SEKISHO_VERSION_H

#define SEKISHO_VERSION		"0.1.0"
/* The date on the manual pages (man/). */
#define SEKISHO_RELEASE_DATE	"2026-11-23"

#endif
