/*
 * milter_spool: reading the header section for the filters and writing
 * the message again with their changes (see milter_spool.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/xmalloc.h"
#include "../queue/spool.h"
#include "milter_proto.h"
#include "milter_spool.h"

void
milter_spool_fields_free(struct milter_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(f[i].name);
		free(f[i].value);
		free(f[i].raw);
	}
	free(f);
}

/* The value of a field as a filter gets it: after the colon, CRLF -> LF,
 * no final line end. */
static char *
milter_spool_value(const char *colon, const char *end)
{
	struct str v = STR_INIT;

	for (const char *p = colon + 1; p < end; p++) {
		if (*p == '\r' && p + 1 < end && p[1] == '\n')
			continue;
		str_append_c(&v, *p);
	}
	size_t len = v.len;

	while (len > 0 && v.s[len - 1] == '\n')
		len--;
	str_truncate(&v, len);
	return str_steal(&v);
}

int
milter_spool_fields(int fd, size_t offset, struct milter_field **f_r,
    size_t *n_r, off_t *body_off_r, off_t *end_r, const char **error_r)
{
	struct str head = STR_INIT;
	struct milter_field *f = NULL;
	struct stat st;
	size_t n = 0, hlen = 0;
	char buf[16384];
	off_t off = (off_t)offset;
	const char *p, *end, *sep = NULL;
	ssize_t r;

	*f_r = NULL;
	*n_r = 0;
	if (fstat(fd, &st) < 0) {
		*error_r = "cannot stat the message";
		return -1;
	}
	*end_r = st.st_size;
	/* read until the empty line ending the header section */
	while (head.len <= MILTER_SPOOL_HEADER_MAX) {
		if ((r = pread(fd, buf, sizeof(buf), off)) < 0) {
			if (errno == EINTR)
				continue;
			*error_r = "cannot read the message";
			str_deinit(&head);
			return -1;
		}
		if (r == 0)
			break;
		size_t from = head.len > 3 ? head.len - 3 : 0;

		str_append_n(&head, buf, (size_t)r);
		off += r;
		if ((sep = memmem(head.s + from, head.len - from, "\r\n\r\n",
		    4)) != NULL)
			break;
	}
	if (sep == NULL && head.len > MILTER_SPOOL_HEADER_MAX) {
		*error_r = "header section over 1 MiB";
		str_deinit(&head);
		return -1;
	}
	if (sep != NULL) {
		hlen = (size_t)(sep - head.s) + 2;	/* through its CRLF */
		*body_off_r = (off_t)(offset + hlen + 2);
	} else {
		hlen = head.len;			/* no body */
		*body_off_r = *end_r;
	}
	p = head.s;
	end = head.s + hlen;
	while (p < end) {
		const char *q = p, *colon, *eol;

		/* a field: its first line and the folded ones after it; the
		 * name is on the first line */
		eol = memchr(p, '\n', (size_t)(end - p));
		eol = eol != NULL ? eol : end;
		do {
			const char *nl = memchr(q, '\n', (size_t)(end - q));

			q = nl != NULL ? nl + 1 : end;
		} while (q < end && (*q == ' ' || *q == '\t'));
		colon = memchr(p, ':', (size_t)(eol - p));
		if (n >= MILTER_SPOOL_FIELDS_MAX) {
			*error_r = "more than 10000 header fields";
			milter_spool_fields_free(f, n);
			str_deinit(&head);
			return -1;
		}
		if (colon != NULL && colon > p) {
			const char *ne = colon;

			while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
				ne--;
			f = xreallocarray(f, n + 1, sizeof(*f));
			f[n].name = xstrndup(p, (size_t)(ne - p));
			f[n].value = milter_spool_value(colon, q);
			f[n].raw = xstrndup(p, (size_t)(q - p));
			n++;
		}
		/* XXX: a line without a colon in the header section (the
		 * session let it through) is kept out of the filters' view
		 * and dropped if the file is written again. */
		p = q;
	}
	str_deinit(&head);
	*f_r = f;
	*n_r = n;
	return 0;
}

/* A value from a filter as written in the file: LF -> CRLF, a space
 * after the colon unless it has its own. */
static void
milter_spool_put_field(struct str *out, const char *name, const char *value)
{
	str_append(out, name);
	str_append_c(out, ':');
	if (value[0] != ' ' && value[0] != '\t')
		str_append_c(out, ' ');
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\n' && (p == value || p[-1] != '\r'))
			str_append_c(out, '\r');
		str_append_c(out, *p);
	}
	str_append(out, "\r\n");
}

static void
milter_spool_added(struct str *added, size_t *nadded, const char *name,
    const char *value)
{
	str_append_n(added, name, strlen(name) + 1);
	str_append_n(added, value, strlen(value) + 1);
	(*nadded)++;
}

/* Apply the header changes to the field list. */
static void
milter_spool_headers(const char *id, struct milter_field **fp, size_t *np,
    const struct milter_job *job, struct str *added, size_t *nadded)
{
	struct milter_field *f = *fp;
	size_t n = *np;

	for (size_t k = 0; k < job->nchanges; k++) {
		const struct milter_change *c = &job->changes[k];
		size_t at = n, seen = 0;

		if (c->cmd == MILTER_R_CHGHEADER) {
			for (size_t i = 0; i < n; i++)
				if (strcasecmp(f[i].name, c->name) == 0 &&
				    ++seen == c->index) {
					at = i;
					break;
				}
			if (at == 0) {
				log_warnx("id=%s milter: change of our own "
				    "Received header ignored", id);
				continue;
			}
			if (at < n && c->value[0] == '\0') {
				free(f[at].name);
				free(f[at].value);
				free(f[at].raw);
				memmove(&f[at], &f[at + 1], (n - at - 1) *
				    sizeof(*f));
				n--;
				continue;
			}
			if (c->value[0] == '\0')
				continue;	/* delete a field not there */
			if (at < n) {
				free(f[at].value);
				free(f[at].raw);
				f[at].value = xstrdup(c->value);
				f[at].raw = NULL;
				milter_spool_added(added, nadded, f[at].name,
				    c->value);
				continue;
			}
			/* changing a field that is not there adds it */
		} else if (c->cmd == MILTER_R_INSHEADER) {
			at = c->index < 1 ? 1 : c->index;	/* after ours */
			if (at > n)
				at = n;
		} else if (c->cmd != MILTER_R_ADDHEADER)
			continue;
		if (n >= MILTER_SPOOL_FIELDS_MAX + 1000)
			continue;
		f = xreallocarray(f, n + 1, sizeof(*f));
		memmove(&f[at + 1], &f[at], (n - at) * sizeof(*f));
		f[at].name = xstrdup(c->name);
		f[at].value = xstrdup(c->value);
		f[at].raw = NULL;
		n++;
		milter_spool_added(added, nadded, c->name, c->value);
	}
	*fp = f;
	*np = n;
}

/* Apply the envelope changes. -1: the store cannot say now. */
static int
milter_spool_envelope(const char *id, struct envelope *env,
    const struct milter_job *job, milter_resolve_fn *resolve, void *arg)
{
	for (size_t k = 0; k < job->nchanges; k++) {
		const struct milter_change *c = &job->changes[k];

		if (c->cmd == MILTER_R_CHGFROM) {
			free(env->sender);
			env->sender = xstrdup(c->name);
		} else if (c->cmd == MILTER_R_DELRCPT) {
			size_t kept = 0;

			for (size_t i = 0; i < env->rcpt_count; i++) {
				if (strcasecmp(env->rcpts[i].address,
				    c->name) == 0) {
					free(env->rcpts[i].address);
					free(env->rcpts[i].mailbox);
					continue;
				}
				env->rcpts[kept++] = env->rcpts[i];
			}
			env->rcpt_count = kept;
		} else if (c->cmd == MILTER_R_ADDRCPT) {
			char *mailbox = NULL;
			int r, dup = 0;

			for (size_t i = 0; i < env->rcpt_count; i++)
				if (strcasecmp(env->rcpts[i].address,
				    c->name) == 0)
					dup = 1;
			if (dup)
				continue;
			if ((r = resolve(arg, c->name, &mailbox)) < 0)
				return -1;
			if (r == 2) {
				char buf[MILTER_ADDR_MAX * 4 + 1];

				log_warnx("id=%s milter: added recipient <%s> "
				    "is no local mailbox: left out", id,
				    log_escape(buf, sizeof(buf), c->name));
				continue;
			}
			envelope_add_rcpt(env, c->name, r == 0 ? mailbox :
			    NULL);
			free(mailbox);
		}
	}
	return 0;
}

int
milter_spool_rewrite(const char *spool_dir, const char *id, int fd,
    size_t offset, struct envelope *env, const struct milter_job *job,
    milter_resolve_fn *resolve, void *resolve_arg, struct str *added,
    size_t *nadded_r, const char **error_r)
{
	struct milter_field *f = NULL;
	struct str out = STR_INIT;
	size_t n = 0;
	off_t body_off, end;
	char *path = NULL, *tmp = NULL;
	int wfd = -1, ret = -1;

	*nadded_r = 0;
	if (milter_spool_envelope(id, env, job, resolve, resolve_arg) < 0) {
		*error_r = "recipient look-up failed";
		return -1;
	}
	if (env->rcpt_count == 0)
		return 1;
	if (milter_spool_fields(fd, offset, &f, &n, &body_off, &end,
	    error_r) < 0)
		return -1;
	milter_spool_headers(id, &f, &n, job, added, nadded_r);
	if (envelope_format(env, &out) < 0) {
		*error_r = "a changed address holds CR, LF or TAB";
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (f[i].raw != NULL)
			str_append(&out, f[i].raw);
		else
			milter_spool_put_field(&out, f[i].name, f[i].value);
	}
	str_append(&out, "\r\n");
	path = xasprintf("%s/incoming/%s", spool_dir, id);
	tmp = xasprintf("%s/incoming/%s.milter", spool_dir, id);
	(void)unlink(tmp);
	wfd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (wfd < 0 || spool_write_full(wfd, out.s, out.len) < 0) {
		*error_r = spool_errno_error("cannot write the changed "
		    "message");
		goto out;
	}
	if (job->body_replaced) {
		/* the filter's body, with CRLF line ends */
		str_clear(&out);
		for (size_t i = 0; i < job->body.len; i++) {
			char ch = job->body.s[i];

			if (ch == '\n' && (i == 0 ||
			    job->body.s[i - 1] != '\r'))
				str_append_c(&out, '\r');
			str_append_c(&out, ch);
		}
		if (spool_write_full(wfd, out.s, out.len) < 0) {
			*error_r = spool_errno_error("cannot write the "
			    "changed message");
			goto out;
		}
	} else {
		char buf[65536];

		for (off_t at = body_off; at < end;) {
			size_t want = (size_t)(end - at) < sizeof(buf) ?
			    (size_t)(end - at) : sizeof(buf);
			ssize_t r = pread(fd, buf, want, at);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0 || spool_write_full(wfd, buf, (size_t)r)
			    < 0) {
				*error_r = "cannot copy the message body";
				goto out;
			}
			at += r;
		}
	}
	/* the commit fsyncs the file before it is acknowledged */
	if (rename(tmp, path) < 0) {
		*error_r = spool_errno_error("cannot replace the message");
		goto out;
	}
	ret = 0;
out:
	if (wfd >= 0)
		close(wfd);
	if (ret < 0 && tmp != NULL)
		(void)unlink(tmp);
	free(tmp);
	free(path);
	str_deinit(&out);
	milter_spool_fields_free(f, n);
	return ret;
}
