/* http_client.c - JSON over HTTP, called with libcurl (a handle kept per thread), and
 * the heartbeat every component sends the manager. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "http_int.h"
#include "log.h"
#include "util.h"

/* ---- client ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static struct pki_identity client_id;
static bool client_tls;
static pthread_mutex_t header_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread bool last_unsent; /* this thread's last call failed before it was sent */

bool http_call_unsent(void)
{
	return last_unsent;
}
static char extra_header[128];

void http_header(const char *line)
{
	pthread_mutex_lock(&header_lock);
	snprintf(extra_header, sizeof(extra_header), "%s", line);
	pthread_mutex_unlock(&header_lock);
}

void http_identity(const struct pki_identity *id)
{
	client_id = *id;
	client_tls = true;
}

const char *http_scheme(void)
{
	return client_tls ? "https" : "http";
}

/*
 * Each thread keeps one handle for calls as this process's member: curl
 * keeps its connections open between calls (HTTP keep-alive), so a thread
 * that calls again (heartbeats, legoctl's pages, the manager's orders to
 * one agent) does not pay a TLS handshake each time.
 */
static pthread_key_t curl_key;

static void curl_handle_free(void *c)
{
	curl_easy_cleanup(c);
}

static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	pthread_key_create(&curl_key, curl_handle_free);
}

static size_t on_data(char *ptr, size_t size, size_t n, void *arg)
{
	return body_append(arg, ptr, size * n) ? 0 : size * n;
}

int http_call_raw(const char *method, const char *url, const char *type, const char *body,
		  char **out, int timeout_ms, char *err, size_t errlen)
{
	return http_call_with(http_client_identity(), method, url, type, body, out, timeout_ms, err,
			      errlen);
}

const struct pki_identity *http_client_identity(void)
{
	return client_tls ? &client_id : NULL;
}

int http_call_with(const struct pki_identity *id, const char *method, const char *url,
		   const char *type, const char *body, char **out, int timeout_ms, char *err,
		   size_t errlen)
{
	return http_call_bytes(id, method, url, type, body, body ? strlen(body) : 0, out, NULL,
			       timeout_ms, err, errlen);
}

int http_call_bytes(const struct pki_identity *id, const char *method, const char *url,
		    const char *type, const void *body, size_t body_len, char **out,
		    size_t *out_len, int timeout_ms, char *err, size_t errlen)
{
	struct body b = {0};
	struct curl_slist *hdrs = NULL;
	char ct[128], why[CURL_ERROR_SIZE] = "";
	long status = -1;
	CURLcode rc;
	bool reuse;
	CURL *c;

	pthread_once(&curl_once, curl_init);
	reuse = id == &client_id || !id;
	c = reuse ? pthread_getspecific(curl_key) : NULL;
	if (c)
		curl_easy_reset(c); /* its options, not its open connections */
	else if ((c = curl_easy_init()) && reuse)
		pthread_setspecific(curl_key, c);
	if (!c) {
		snprintf(err, errlen, "cannot start an HTTP request");
		return -1;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(timeout_ms < 3000 ? timeout_ms : 3000));
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, why);
	if (id && id->ca[0]) {
		/* the server must be a member: signed by the cluster's CA, for its address */
		curl_easy_setopt(c, CURLOPT_CAINFO, id->ca);
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	} else if (id) {
		/* trusting no one: only to fetch a CA that is checked against a fingerprint */
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (id && id->cert[0]) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, id->cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, id->key);
	}
	pthread_mutex_lock(&header_lock);
	if (extra_header[0])
		hdrs = curl_slist_append(hdrs, extra_header);
	pthread_mutex_unlock(&header_lock);
	if (body) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", type ? type : "application/json");
		hdrs = curl_slist_append(hdrs, ct);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
	}
	if (hdrs)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	rc = curl_easy_perform(c);
	last_unsent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
		      rc == CURLE_SSL_CONNECT_ERROR;
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(err, errlen, "%s: %s", url, why[0] ? why : curl_easy_strerror(rc));
	curl_slist_free_all(hdrs);
	if (!reuse)
		curl_easy_cleanup(c);
	if (rc != CURLE_OK) {
		free(b.buf);
		return -1;
	}
	if (out_len)
		*out_len = b.len;
	if (out)
		*out = b.buf ? b.buf : strdup("");
	else
		free(b.buf);
	return (int)status;
}

int http_call(const char *method, const char *url, json_t *body, json_t **out, int timeout_ms,
	      char *err, size_t errlen)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL, *answer = NULL;
	int status = http_call_raw(method, url, NULL, text, &answer, timeout_ms, err, errlen);
	json_t *j = NULL;

	free(text);
	if (out)
		*out = NULL;
	if (status < 0)
		return status;
	j = json_loads(answer, 0, NULL);
	if (status >= 400) {
		const char *e = json_string_value(json_object_get(j, "error"));

		snprintf(err, errlen, "%s", e ? e : answer[0] ? answer : "no reason given");
	}
	free(answer);
	if (out)
		*out = j;
	else
		json_decref(j);
	return status;
}

/* ---- several managers ---- */

int http_managers_parse(struct http_managers *ms, const char *list, char *err, size_t errlen)
{
	memset(ms, 0, sizeof(*ms));
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");

		if (!n || n >= sizeof(ms->url[0]) || ms->n == HTTP_MAX_MANAGERS) {
			snprintf(err, errlen, "'%s' is not URL[,URL...] (at most %d managers)",
				 list, HTTP_MAX_MANAGERS);
			return -1;
		}
		snprintf(ms->url[ms->n++], sizeof(ms->url[0]), "%.*s", (int)n, p);
		p += n + (p[n] == ',');
	}
	if (!ms->n) {
		snprintf(err, errlen, "no manager URL given");
		return -1;
	}
	return 0;
}

const char *http_managers_now(const struct http_managers *ms)
{
	return ms->leader[0] ? ms->leader : ms->url[ms->cur];
}

int http_managers_call(struct http_managers *ms, const char *method, const char *path, json_t *body,
		       json_t **out, int timeout_ms, char *err, size_t errlen)
{
	uint64_t start = mono_ms(), end = start + (uint64_t)timeout_ms;
	int status = -1, tried = 0, unreachable = 0, hops = 0;

	for (;;) {
		char url[1024];
		json_t *j = NULL;
		uint64_t now = mono_ms();

		snprintf(url, sizeof(url), "%s%s", http_managers_now(ms), path);
		status = http_call(method, url, body, &j, (int)(end > now ? end - now : 1), err,
				   errlen);
		/* a standby names the leader: followed, but not round and round while
		 * the managers disagree (a leader changing): then it counts as a miss */
		if (status == 307 && json_string_value(json_object_get(j, "leader")) &&
		    strcmp(json_string_value(json_object_get(j, "leader")), ms->leader) &&
		    ++hops <= 2 * ms->n) {
			snprintf(ms->leader, sizeof(ms->leader), "%s",
				 json_string_value(json_object_get(j, "leader")));
			json_decref(j);
			continue;
		}
		/* a standby without a leader says "leader": null; any other 503 is an answer */
		bool no_leader = status == 503 && json_is_null(json_object_get(j, "leader"));

		if (status >= 0 && !no_leader && status != 307) {
			if (out)
				*out = j;
			else
				json_decref(j);
			return status;
		}
		json_decref(j);
		if (status < 0 && !http_call_unsent() && strcmp(method, "GET")) {
			/* it may have been done: asking another could do it twice */
			char why[512];

			snprintf(why, sizeof(why), "%s", err);
			snprintf(err, errlen,
				 "%s went away during the request, which may or may not have "
				 "been done: %s",
				 http_managers_now(ms), why);
			if (out)
				*out = NULL;
			return -1;
		}
		unreachable += status < 0;
		/* not reachable, or no leader there: the next manager */
		if (ms->leader[0])
			ms->leader[0] = '\0';
		else
			ms->cur = (ms->cur + 1) % ms->n;
		if (++tried % ms->n)
			continue;
		/* a round without a leader: one may be being elected (within a lease: a
		 * few seconds; 30 s without one is given up on, etcd may be down); a round
		 * where none answered at all is given up on (at once if there is only one) */
		if ((unreachable == ms->n && (ms->n == 1 || mono_ms() - start > 10000)) ||
		    mono_ms() - start > 30000)
			break;
		unreachable = 0;
		if (mono_ms() + 200 >= end)
			break;
		usleep(200 * 1000);
	}
	if (out)
		*out = NULL;
	if (status != -1)
		snprintf(err, errlen, "no manager leads (%d tried)", ms->n);
	return status < 0 ? -1 : 503;
}

/* ---- heartbeats ---- */

struct beat {
	struct http_managers ms;
	beat_answer on_answer;
	int interval_ms;
	beat_fill fill;
	void *opaque;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
};

static void *beat_main(void *arg)
{
	struct beat *b = arg;
	bool warned = false;

	pthread_mutex_lock(&b->lock);
	while (!b->stop) {
		struct timespec ts;
		char err[512];
		json_t *body;
		int status;

		pthread_mutex_unlock(&b->lock);
		body = b->fill(b->opaque);
		json_t *answer = NULL;

		status = http_managers_call(&b->ms, "POST", "/v1/heartbeat", body, &answer, 2000,
					    err, sizeof(err));
		json_decref(body);
		pthread_mutex_lock(&b->lock);
		beat_answer fn = b->on_answer;
		pthread_mutex_unlock(&b->lock);
		if (status == 200 && answer && fn)
			fn(b->opaque, answer);
		json_decref(answer);
		if (status != 200 && !warned)
			log_warn("heartbeat to the manager failed (%s); retrying every %d ms",
				 status < 0 ? err : err, b->interval_ms);
		else if (status == 200 && warned)
			log_info("heartbeats reach the manager again");
		warned = status != 200;
		pthread_mutex_lock(&b->lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(b->interval_ms % 1000) * 1000000L;
		ts.tv_sec += b->interval_ms / 1000 + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		while (!b->stop && pthread_cond_timedwait(&b->cond, &b->lock, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

struct beat *beat_start(const char *manager_url, int interval_ms, beat_fill fill, void *opaque)
{
	struct beat *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	char err[256];

	if (http_managers_parse(&b->ms, manager_url, err, sizeof(err))) {
		log_err("heartbeats: %s", err);
		free(b);
		return NULL;
	}
	b->interval_ms = interval_ms;
	b->fill = fill;
	b->opaque = opaque;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	if (thread_start_quiet(&b->thread, beat_main, b)) {
		free(b);
		return NULL;
	}
	return b;
}

void beat_answers(struct beat *b, beat_answer fn)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->on_answer = fn;
	pthread_mutex_unlock(&b->lock);
}

void beat_stop(struct beat *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->stop = true;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->thread, NULL);
	free(b);
}
