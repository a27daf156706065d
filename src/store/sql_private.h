/*
 * sql_private: what a driver of sql.h implements (private to
 * src/store/). sql.c owns the statement cache, the error text and the
 * dispatch; a driver's handles embed struct sql_db and struct sql_stmt
 * as their first members.
 */
#ifndef SEKISHO_SQL_PRIVATE_H
#define SEKISHO_SQL_PRIVATE_H

#include "../core/str.h"
#include "sql.h"

#define SQL_CACHE_BUCKETS	128

struct sql_driver {
	const char *scheme;	/* "sqlite" for "sqlite:PATH" */
	/* location: the URI after "scheme:" */
	struct sql_db *(*open)(const char *location, const char **error_r);
	void (*close)(struct sql_db *db);
	const char *(*type_name)(enum sql_type type);
	/* a new statement (kept by sql.c) */
	struct sql_stmt *(*prepare)(struct sql_db *db, const char *query,
	    enum sql_row_lock lock, const char **error_r);
	void (*finalize)(struct sql_stmt *stmt);
	int (*param_count)(struct sql_stmt *stmt);
	void (*bind_int64)(struct sql_stmt *stmt, int n, int64_t value);
	void (*bind_text)(struct sql_stmt *stmt, int n, const char *value);
	int (*step)(struct sql_stmt *stmt, const char **error_r);
	int64_t (*col_int64)(struct sql_stmt *stmt, int col);
	const char *(*col_text)(struct sql_stmt *stmt, int col);
	int (*col_is_null)(struct sql_stmt *stmt, int col);
	int64_t (*changes)(struct sql_stmt *stmt);
	void (*reset)(struct sql_stmt *stmt);
	int (*begin)(struct sql_db *db, enum sql_tx tx, const char **error_r);
	int (*commit)(struct sql_db *db, const char **error_r);
	void (*rollback)(struct sql_db *db);
	int (*lock_name)(struct sql_db *db, int64_t key, const char **error_r);
	int (*exec_script)(struct sql_db *db, const char *script,
	    const char **error_r);
};

struct sql_db {
	const struct sql_driver	*drv;
	struct str		 error;
	int			 unique_violation;	/* of the last step */
	unsigned int		 prepares;	/* by the database */
	struct sql_stmt		*cache[SQL_CACHE_BUCKETS];
};

struct sql_stmt {
	struct sql_db		*db;
	const char		*query;	/* the caller's literal: the key */
	enum sql_row_lock	 lock;
	struct sql_stmt		*next;	/* in its cache bucket */
};

/* PostgreSQL's text of a query: ?N as $N outside string literals and
 * quoted names, the row lock's clause appended; *nparams_r the highest N.
 * The caller frees it. */
char *sql_pgsql_rewrite(const char *query, enum sql_row_lock lock,
    int *nparams_r);

/* For drivers' open failures, where there is no handle yet: a per-thread
 * buffer, valid until the next sql_open in that thread. */
void sql_open_error(const char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A driver's open calls this on its new handle. */
void sql_db_init(struct sql_db *db, const struct sql_driver *drv);

extern const struct sql_driver sql_driver_sqlite;
extern const struct sql_driver sql_driver_pgsql;

#endif
