/*
 * be_session: the per-(channel, session) records of the back side (see
 * be_session.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../core/xmalloc.h"
#include "../milter/milter.h"
#include "backend.h"
#include "be_session.h"

#define BE_SESSION_BUCKETS	4096
/* Session numbers ended lately, per channel: a request of a session that
 * is gone, still queued when its BE_SESSION_END ran, makes no record
 * again (it would stay until the channel closes). */
#define BE_SESSION_ENDED	256

struct be_sess_rcpt {
	char	*address;
	char	*mailbox;		/* NULL: remote */
};

struct be_sess {
	unsigned		 chan;
	uint64_t		 id;
	char			*account;
	char			*apop_ts;
	int			 has_mbox;
	uint64_t		 mbox;
	char			 spool_id[QUEUE_ID_LEN + 1];
	int			 policy_ok;
	char			*sender;
	char			 country[16];
	int			 overseas;
	struct be_sess_rcpt	*rcpts;		/* a ring */
	size_t			 nrcpt, rcpt_cap, rcpt_next;
	struct be_sess		*next;		/* bucket */
};

struct be_sess_chan {
	unsigned		 chan;
	size_t			 count;
	uint64_t		 ended[BE_SESSION_ENDED];
	size_t			 nended, ended_next;
	struct be_sess_chan	*next;
};

static pthread_mutex_t be_session_lock = PTHREAD_MUTEX_INITIALIZER;
static struct be_sess *be_session_bucket[BE_SESSION_BUCKETS];
static struct be_sess_chan *be_session_chans;
static size_t be_session_total;

static size_t
be_session_hash(unsigned chan, uint64_t sess)
{
	uint64_t h = (sess ^ ((uint64_t)chan << 32 | chan)) *
	    0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 40) % BE_SESSION_BUCKETS;
}

/* The lock held. */
static struct be_sess *
be_session_find(unsigned chan, uint64_t sess)
{
	struct be_sess *s = be_session_bucket[be_session_hash(chan, sess)];

	for (; s != NULL; s = s->next)
		if (s->chan == chan && s->id == sess)
			return s;
	return NULL;
}

static struct be_sess_chan *
be_session_chan(unsigned chan, int create)
{
	struct be_sess_chan *c;

	for (c = be_session_chans; c != NULL; c = c->next)
		if (c->chan == chan)
			return c;
	if (!create)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->chan = chan;
	c->next = be_session_chans;
	be_session_chans = c;
	return c;
}

static void
be_session_rcpts_clear(struct be_sess *s)
{
	for (size_t i = 0; i < s->nrcpt; i++) {
		free(s->rcpts[i].address);
		free(s->rcpts[i].mailbox);
	}
	xfree(&s->rcpts);
	s->nrcpt = s->rcpt_cap = s->rcpt_next = 0;
}

static void
be_session_txn_clear(struct be_sess *s)
{
	be_session_rcpts_clear(s);
	s->policy_ok = 0;
	xfree(&s->sender);
	s->country[0] = '\0';
	s->overseas = 0;
}

static void
be_session_free(struct be_sess *s)
{
	be_session_txn_clear(s);
	free(s->account);
	free(s->apop_ts);
	free(s);
}

/* Unlink s (the lock held); the caller frees it. */
static void
be_session_unlink(struct be_sess *s)
{
	struct be_sess **pp = &be_session_bucket[be_session_hash(s->chan,
	    s->id)];
	struct be_sess_chan *c = be_session_chan(s->chan, 0);

	for (; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	if (c != NULL && c->count > 0)
		c->count--;
	be_session_total--;
}

int
be_session_touch(unsigned chan, uint64_t sess, size_t cap)
{
	struct be_sess_chan *c;
	struct be_sess *s;
	int ret = 0;

	pthread_mutex_lock(&be_session_lock);
	if (be_session_find(chan, sess) != NULL)
		goto out;
	c = be_session_chan(chan, 1);
	for (size_t i = 0; i < c->nended; i++)
		if (c->ended[i] == sess) {
			ret = -1;
			goto out;
		}
	if (c->count >= cap) {
		log_warnx("backend: channel=%u session=%llu refused: %zu "
		    "sessions on the channel already", chan,
		    (unsigned long long)sess, c->count);
		ret = -1;
		goto out;
	}
	s = xcalloc(1, sizeof(*s));
	s->chan = chan;
	s->id = sess;
	s->next = be_session_bucket[be_session_hash(chan, sess)];
	be_session_bucket[be_session_hash(chan, sess)] = s;
	c->count++;
	be_session_total++;
out:
	pthread_mutex_unlock(&be_session_lock);
	return ret;
}

char *
be_session_account(unsigned chan, uint64_t sess)
{
	struct be_sess *s;
	char *a = NULL;

	pthread_mutex_lock(&be_session_lock);
	if ((s = be_session_find(chan, sess)) != NULL && s->account != NULL)
		a = xstrdup(s->account);
	pthread_mutex_unlock(&be_session_lock);
	return a;
}

void
be_session_set_account(unsigned chan, uint64_t sess, const char *account)
{
	struct be_sess *s;

	pthread_mutex_lock(&be_session_lock);
	if ((s = be_session_find(chan, sess)) != NULL) {
		free(s->account);
		s->account = account != NULL ? xstrdup(account) : NULL;
	}
	pthread_mutex_unlock(&be_session_lock);
}

char *
be_session_apop_timestamp(unsigned chan, uint64_t sess)
{
	struct be_sess *s;
	char *t = NULL;

	pthread_mutex_lock(&be_session_lock);
	if ((s = be_session_find(chan, sess)) != NULL && s->apop_ts != NULL)
		t = xstrdup(s->apop_ts);
	pthread_mutex_unlock(&be_session_lock);
	return t;
}

int
be_session_set_apop_timestamp(unsigned chan, uint64_t sess,
    const char *timestamp)
{
	struct be_sess *s;

	pthread_mutex_lock(&be_session_lock);
	if ((s = be_session_find(chan, sess)) != NULL) {
		free(s->apop_ts);
		s->apop_ts = xstrdup(timestamp);
	}
	pthread_mutex_unlock(&be_session_lock);
	return s != NULL ? 0 : -1;
}

int
be_session_rcpt_add(unsigned chan, uint64_t sess, const char *address,
    const char *mailbox, size_t cap)
{
	struct be_sess *s;
	struct be_sess_rcpt *r;

	if (cap == 0)
		cap = 1;
	pthread_mutex_lock(&be_session_lock);
	if ((s = be_session_find(chan, sess)) == NULL) {
		pthread_mutex_unlock(&be_session_lock);
		return -1;
	}
	if (s->nrcpt < cap) {
		if (s->nrcpt == s->rcpt_cap) {
			s->rcpt_cap = s->rcpt_cap == 0 ? 8 : s->rcpt_cap * 2;
			if (s->rcpt_cap > cap)
				s->rcpt_cap = cap;
			s->rcpts = xreallocarray(s->rcpts, s->rcpt_cap,
			    sizeof(*s->rcpts));
		}
		r = &s->rcpts[s->nrcpt++];
	} else {
		/* full (the cap may have shrunk on reload): the oldest goes;
		 * a transaction holds at most cap recipients, and they are
		 * the newest */
		r = &s->rcpts[s->rcpt_next % s->nrcpt];
		s->rcpt_next = (s->rcpt_next + 1) % s->nrcpt;
		free(r->address);
		free(r->mailbox);
	}
	r->address = xstrdup(address);
	r->mailbox = mailbox != NULL ? xstrdup(mailbox) : NULL;
	pthread_mutex_unlock(&be_session_lock);
	return 0;
}

int
be_session_rcpt_accepted(unsigned chan, uint64_t sess, const char *address,
    const char *mailbox)
{
	struct be_sess *s;
	int found = 0;

	pthread_mutex_lock(&be_session_lock);
	if ((s = be_session_find(chan, sess)) != NULL)
		for (size_t i = 0; i < s->nrcpt && !found; i++) {
			const struct be_sess_rcpt *r = &s->rcpts[i];

			found = strcmp(r->address, address) == 0 &&
			    ((r->mailbox == NULL && mailbox == NULL) ||
			    (r->mailbox != NULL && mailbox != NULL &&
			    strcmp(r->mailbox, mailbox) == 0));
		}
	pthread_mutex_unlock(&be_session_lock);
	return found;
}

void
be_session_set_policy(unsigned chan, uint64_t sess, const char *sender,
    const char *country, int overseas)
{
	struct be_sess *s;

	pthread_mutex_lock(&be_session_lock);
	if ((s = be_session_find(chan, sess)) != NULL) {
		be_session_txn_clear(s);
		s->policy_ok = 1;
		s->sender = xstrdup(sender);
		xstrlcpy(s->country, country != NULL ? country : "",
		    sizeof(s->country));
		s->overseas = overseas;
	}
	pthread_mutex_unlock(&be_session_lock);
}

void
be_session_txn_reset(unsigned chan, uint64_t sess)
{
	struct be_sess *s;

	pthread_mutex_lock(&be_session_lock);
	if ((s = be_session_find(chan, sess)) != NULL)
		be_session_txn_clear(s);
	pthread_mutex_unlock(&be_session_lock);
}

int
be_session_txn(unsigned chan, uint64_t sess, struct be_session_txn *t)
{
	struct be_sess *s;

	memset(t, 0, sizeof(*t));
	pthread_mutex_lock(&be_session_lock);
	if ((s = be_session_find(chan, sess)) != NULL) {
		t->account = s->account != NULL ? xstrdup(s->account) : NULL;
		t->policy_ok = s->policy_ok;
		t->sender = s->sender != NULL ? xstrdup(s->sender) : NULL;
		xstrlcpy(t->country, s->country, sizeof(t->country));
		t->overseas = s->overseas;
	}
	pthread_mutex_unlock(&be_session_lock);
	return s != NULL ? 0 : -1;
}

void
be_session_txn_deinit(struct be_session_txn *t)
{
	xfree(&t->account);
	xfree(&t->sender);
}

int
be_session_spool_set(unsigned chan, uint64_t sess, const char *id,
    char old_r[QUEUE_ID_LEN + 1])
{
	struct be_sess *s;

	old_r[0] = '\0';
	pthread_mutex_lock(&be_session_lock);
	if ((s = be_session_find(chan, sess)) != NULL) {
		xstrlcpy(old_r, s->spool_id, QUEUE_ID_LEN + 1);
		xstrlcpy(s->spool_id, id, sizeof(s->spool_id));
	}
	pthread_mutex_unlock(&be_session_lock);
	return s != NULL ? 0 : -1;
}

int
be_session_spool_take(unsigned chan, uint64_t sess, const char *id)
{
	struct be_sess *s;
	int ok = 0;

	pthread_mutex_lock(&be_session_lock);
	if ((s = be_session_find(chan, sess)) != NULL &&
	    s->spool_id[0] != '\0' && strcmp(s->spool_id, id) == 0) {
		s->spool_id[0] = '\0';
		ok = 1;
	}
	pthread_mutex_unlock(&be_session_lock);
	return ok;
}

int
be_session_mbox_set(unsigned chan, uint64_t sess, uint64_t handle)
{
	struct be_sess *s;
	int ret = -1;

	pthread_mutex_lock(&be_session_lock);
	if ((s = be_session_find(chan, sess)) != NULL && !s->has_mbox) {
		s->has_mbox = 1;
		s->mbox = handle;
		ret = 0;
	}
	pthread_mutex_unlock(&be_session_lock);
	return ret;
}

static int
be_session_mbox_get(unsigned chan, uint64_t sess, uint64_t *handle_r,
    int take)
{
	struct be_sess *s;
	int ret = -1;

	pthread_mutex_lock(&be_session_lock);
	if ((s = be_session_find(chan, sess)) != NULL && s->has_mbox) {
		*handle_r = s->mbox;
		if (take)
			s->has_mbox = 0;
		ret = 0;
	}
	pthread_mutex_unlock(&be_session_lock);
	return ret;
}

int
be_session_mbox(unsigned chan, uint64_t sess, uint64_t *handle_r)
{
	return be_session_mbox_get(chan, sess, handle_r, 0);
}

int
be_session_mbox_take(unsigned chan, uint64_t sess, uint64_t *handle_r)
{
	return be_session_mbox_get(chan, sess, handle_r, 1);
}

int
be_session_end(unsigned chan, uint64_t sess, struct be_session_left *left_r)
{
	struct be_sess *s;
	struct be_sess_chan *c;

	memset(left_r, 0, sizeof(*left_r));
	pthread_mutex_lock(&be_session_lock);
	if ((c = be_session_chan(chan, 0)) != NULL) {
		c->ended[c->ended_next] = sess;
		c->ended_next = (c->ended_next + 1) % BE_SESSION_ENDED;
		if (c->nended < BE_SESSION_ENDED)
			c->nended++;
	}
	if ((s = be_session_find(chan, sess)) != NULL) {
		be_session_unlink(s);
		left_r->has_mbox = s->has_mbox;
		left_r->mbox = s->mbox;
		xstrlcpy(left_r->spool_id, s->spool_id,
		    sizeof(left_r->spool_id));
	}
	pthread_mutex_unlock(&be_session_lock);
	if (s == NULL)
		return -1;
	be_session_free(s);
	return 0;
}

void
be_session_drop_channel(unsigned chan)
{
	struct be_sess *gone = NULL;
	struct be_sess_chan **cp;
	size_t n = 0;

	pthread_mutex_lock(&be_session_lock);
	for (size_t b = 0; b < BE_SESSION_BUCKETS; b++) {
		struct be_sess **pp = &be_session_bucket[b];

		while (*pp != NULL) {
			struct be_sess *s = *pp;

			if (s->chan != chan) {
				pp = &s->next;
				continue;
			}
			*pp = s->next;
			s->next = gone;
			gone = s;
			be_session_total--;
			n++;
		}
	}
	for (cp = &be_session_chans; *cp != NULL; cp = &(*cp)->next)
		if ((*cp)->chan == chan) {
			struct be_sess_chan *c = *cp;

			*cp = c->next;
			free(c);
			break;
		}
	pthread_mutex_unlock(&be_session_lock);
	be_spool_channel_gone(chan);
	if (n > 0)
		log_debug("backend: channel %u closed: %zu session records "
		    "dropped", chan, n);
	while (gone != NULL) {
		struct be_sess *s = gone;

		gone = s->next;
		if (s->has_mbox)
			be_mailbox_abandon(s->mbox);
		if (s->spool_id[0] != '\0')
			be_spool_abandon(s->spool_id);
		be_session_free(s);
	}
}

size_t
be_session_count(void)
{
	size_t n;

	pthread_mutex_lock(&be_session_lock);
	n = be_session_total;
	pthread_mutex_unlock(&be_session_lock);
	return n;
}

size_t
be_session_cap(const struct be_worker *w)
{
	/* A session process never has more sessions than the daemon has
	 * connections; a little room for sessions ending meanwhile. */
	return (size_t)w->conf->max_connections + 64;
}

int
be_session_begin(struct be_worker *w, struct msg *req, uint64_t *sess_r)
{
	if (msg_get_u64(req, sess_r) < 0)
		return -1;
	return be_session_touch(w->chan, *sess_r, be_session_cap(w));
}

int
be_session_end_req(struct be_worker *w, struct msg *req, struct msg *reply)
{
	struct be_session_left left;
	uint64_t sess;

	if (msg_get_u64(req, &sess) < 0 || msg_end(req) < 0)
		return -1;
	if (be_session_end(w->chan, sess, &left) == 0) {
		char name[MILTER_SESSION_MAX];

		if (left.has_mbox)
			be_mailbox_close_handle(w, left.mbox);
		if (left.spool_id[0] != '\0')
			be_spool_drop(w, left.spool_id);
		/* its filter connections (milter.h) are quit now */
		milter_session_name(name, w->chan, sess);
		milter_session_end(be_worker_milter(w), name);
	}
	msg_add_u32(reply, 0);
	return 0;
}
