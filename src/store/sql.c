/*
 * sql: the dispatch to the drivers, the kept statements and the error
 * text (sql.h). A statement is kept per connection in a small hash table
 * keyed by the address of its query text and its row lock.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../core/str.h"
#include "sql.h"
#include "sql_private.h"

static const struct sql_driver *const sql_drivers[] = {
	&sql_driver_sqlite,
	&sql_driver_pgsql,
};

static _Thread_local char sql_open_error_buf[512];

void
sql_open_error(const char **error_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(sql_open_error_buf, sizeof(sql_open_error_buf), fmt,
	    ap);
	va_end(ap);
	*error_r = sql_open_error_buf;
}

void
sql_db_init(struct sql_db *db, const struct sql_driver *drv)
{
	db->drv = drv;
	str_init(&db->error);
}

int
sql_set_error(struct sql_db *db, const char **error_r, const char *fmt, ...)
{
	va_list ap;

	str_clear(&db->error);
	va_start(ap, fmt);
	str_vprintf(&db->error, fmt, ap);
	va_end(ap);
	*error_r = str_c(&db->error);
	return -1;
}

struct sql_db *
sql_open(const char *uri, const char **error_r)
{
	const char *colon = strchr(uri, ':');
	char quoted[200];
	size_t len;

	if (colon != NULL) {
		len = (size_t)(colon - uri);
		for (size_t i = 0;
		    i < sizeof(sql_drivers) / sizeof(sql_drivers[0]); i++) {
			if (strlen(sql_drivers[i]->scheme) == len &&
			    strncmp(sql_drivers[i]->scheme, uri, len) == 0)
				return sql_drivers[i]->open(colon + 1,
				    error_r);
		}
	}
	sql_open_error(error_r, "unknown store '%s' (expected sqlite:PATH or "
	    "postgresql:CONNINFO)", log_printable(quoted, sizeof(quoted), uri,
	    strlen(uri)));
	return NULL;
}

void
sql_close(struct sql_db **dbp)
{
	struct sql_db *db = *dbp;

	if (db == NULL)
		return;
	*dbp = NULL;
	for (size_t i = 0; i < SQL_CACHE_BUCKETS; i++) {
		struct sql_stmt *s = db->cache[i], *next;

		for (; s != NULL; s = next) {
			next = s->next;
			db->drv->finalize(s);
		}
	}
	str_deinit(&db->error);
	db->drv->close(db);
}

const char *
sql_driver_name(const struct sql_db *db)
{
	return db->drv->scheme;
}

const char *
sql_type_name(const struct sql_db *db, enum sql_type type)
{
	return db->drv->type_name(type);
}

static size_t
sql_bucket(const char *query, enum sql_row_lock lock)
{
	uintptr_t p = (uintptr_t)query;

	p ^= p >> 7;
	p ^= p >> 13;
	return (size_t)(p + (uintptr_t)lock) % SQL_CACHE_BUCKETS;
}

struct sql_stmt *
sql_prepare_lock(struct sql_db *db, const char *query, enum sql_row_lock lock,
    const char **error_r)
{
	size_t b = sql_bucket(query, lock);
	struct sql_stmt *s;

	for (s = db->cache[b]; s != NULL; s = s->next) {
		if (s->query == query && s->lock == lock) {
			db->drv->reset(s);
			return s;
		}
	}
	if ((s = db->drv->prepare(db, query, lock, error_r)) == NULL)
		return NULL;
	s->db = db;
	s->query = query;
	s->lock = lock;
	s->next = db->cache[b];
	db->cache[b] = s;
	return s;
}

struct sql_stmt *
sql_prepare(struct sql_db *db, const char *query, const char **error_r)
{
	return sql_prepare_lock(db, query, SQL_LOCK_NONE, error_r);
}

unsigned int
sql_prepare_count(const struct sql_db *db)
{
	return db->prepares;
}

int
sql_param_count(struct sql_stmt *stmt)
{
	return stmt->db->drv->param_count(stmt);
}

void
sql_bind_int64(struct sql_stmt *stmt, int n, int64_t value)
{
	stmt->db->drv->bind_int64(stmt, n, value);
}

void
sql_bind_text(struct sql_stmt *stmt, int n, const char *value)
{
	stmt->db->drv->bind_text(stmt, n, value);
}

void
sql_bind_null(struct sql_stmt *stmt, int n)
{
	stmt->db->drv->bind_text(stmt, n, NULL);
}

int
sql_step(struct sql_stmt *stmt, const char **error_r)
{
	stmt->db->unique_violation = 0;
	return stmt->db->drv->step(stmt, error_r);
}

int64_t
sql_col_int64(struct sql_stmt *stmt, int col)
{
	return stmt->db->drv->col_int64(stmt, col);
}

const char *
sql_col_text(struct sql_stmt *stmt, int col)
{
	return stmt->db->drv->col_text(stmt, col);
}

int
sql_col_is_null(struct sql_stmt *stmt, int col)
{
	return stmt->db->drv->col_is_null(stmt, col);
}

int64_t
sql_changes(struct sql_stmt *stmt)
{
	return stmt->db->drv->changes(stmt);
}

void
sql_reset(struct sql_stmt *stmt)
{
	stmt->db->drv->reset(stmt);
}

int
sql_run(struct sql_stmt *stmt, int64_t *changed_r, const char **error_r)
{
	int r = sql_step(stmt, error_r);

	if (r >= 0 && changed_r != NULL)
		*changed_r = sql_changes(stmt);
	sql_reset(stmt);
	return r < 0 ? -1 : 0;
}

int
sql_begin(struct sql_db *db, enum sql_tx tx, const char **error_r)
{
	return db->drv->begin(db, tx, error_r);
}

int
sql_commit(struct sql_db *db, const char **error_r)
{
	return db->drv->commit(db, error_r);
}

int
sql_rollback(struct sql_db *db, int ret)
{
	db->drv->rollback(db);
	return ret;
}

int
sql_lock_name(struct sql_db *db, int64_t key, const char **error_r)
{
	return db->drv->lock_name(db, key, error_r);
}

int
sql_unique_violation(const struct sql_db *db)
{
	return db->unique_violation;
}

int
sql_exec_script(struct sql_db *db, const char *script, const char **error_r)
{
	return db->drv->exec_script(db, script, error_r);
}
