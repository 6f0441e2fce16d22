/*
 * client_call.c - one request of the HTTP client (client.c drives them all
 * on the loop): its curl easy handle set up from the caller's options (URL,
 * method, headers, body, TLS files, server_name, timeouts), curl's header
 * and write callbacks that collect the answer, and the classification of how
 * it ended. Nothing here calls libcurl's multi API, so the callbacks may run
 * while curl is on the stack.
 *
 * Bodies and headers are collected into our own buffers, grown by hand so a
 * sensitive buffer's old block is wiped, and bounded (max_body,
 * MAX_HEADER_BYTES) so a peer cannot make us grow without end.
 */
#include <curl/curl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "http/client_internal.h"

/* Append to a growing buffer. Growth copies by hand instead of realloc so the
 * old block of a sensitive buffer can be wiped. -1 on out of memory. */
static int buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n, int sensitive)
{
	if (n > *cap - *len) {
		size_t ncap = *cap ? *cap : FIRST_BUF_CAP;
		char *nbuf;

		while (ncap - *len < n)
			ncap = ncap > SIZE_MAX / 2 ? SIZE_MAX : ncap * 2;
		if (!sensitive) {
			nbuf = realloc(*buf, ncap);
			if (!nbuf)
				return -1;
		} else {
			nbuf = malloc(ncap);
			if (!nbuf)
				return -1;
			if (*len)
				memcpy(nbuf, *buf, *len);
			wipe_free(*buf, *cap, 1);
		}
		*buf = nbuf;
		*cap = ncap;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	return 0;
}

/* ---- curl's callbacks: they only record; nothing here calls libcurl's multi API ---- */

static size_t on_curl_header(char *line, size_t size, size_t nmemb, void *userp)
{
	struct bcn_http_call *c = userp;
	size_t n = size * nmemb, end = n;
	const char *colon, *value;
	size_t name_len, value_len;

	if (c->doomed)
		return 0;
	/* A status line starts a new response (after a 1xx such as 100-continue);
	 * only the final response's headers count. */
	if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		if (c->hdrs && c->sensitive)
			sodium_memzero(c->hdrs, c->hdrs_len);
		c->hdrs_len = 0;
		return n;
	}
	while (end > 0 && (line[end - 1] == '\r' || line[end - 1] == '\n'))
		end--;
	colon = memchr(line, ':', end);
	if (!colon || colon == line)
		return n; /* blank line ending the block, or obsolete folding */
	if (memchr(line, '\0', end))
		return n; /* would break the "name\0value\0" store; no legitimate header has one */
	name_len = (size_t)(colon - line);
	value = colon + 1;
	while (value < line + end && (*value == ' ' || *value == '\t'))
		value++;
	value_len = (size_t)(line + end - value);
	while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
		value_len--;

	if (c->hdrs_len + name_len + value_len + 2 > MAX_HEADER_BYTES) {
		call_fail(c, BCN_HTTP_EOTHER, "the response headers are larger than 256 KiB.");
		return 0;
	}
	if (buf_append(&c->hdrs, &c->hdrs_len, &c->hdrs_cap, line, name_len, c->sensitive) < 0 ||
	    buf_append(&c->hdrs, &c->hdrs_len, &c->hdrs_cap, "", 1, c->sensitive) < 0 ||
	    buf_append(&c->hdrs, &c->hdrs_len, &c->hdrs_cap, value, value_len, c->sensitive) < 0 ||
	    buf_append(&c->hdrs, &c->hdrs_len, &c->hdrs_cap, "", 1, c->sensitive) < 0) {
		call_fail(c, BCN_HTTP_EOTHER, "out of memory while reading the response headers.");
		return 0;
	}
	return n;
}

static size_t on_curl_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct bcn_http_call *c = userp;
	size_t n = size * nmemb;

	if (c->doomed)
		return CURL_WRITEFUNC_ERROR;
	if (c->on_data) {
		int stop = c->on_data(data, n, c->arg);

		if (c->doomed) /* cancelled from inside on_data */
			return CURL_WRITEFUNC_ERROR;
		if (stop) {
			call_fail(c, BCN_HTTP_EABORTED, "the response stream was stopped by its reader.");
			return CURL_WRITEFUNC_ERROR;
		}
		return n;
	}
	if (n > c->max_body - c->body_len) {
		snprintf(c->msg, sizeof(c->msg), "the response body is larger than the %zu-byte limit.",
			 c->max_body);
		c->error = BCN_HTTP_ETOOBIG;
		return CURL_WRITEFUNC_ERROR;
	}
	if (buf_append(&c->body, &c->body_len, &c->body_cap, data, n, c->sensitive) < 0) {
		call_fail(c, BCN_HTTP_EOTHER, "out of memory while reading the response body.");
		return CURL_WRITEFUNC_ERROR;
	}
	return n;
}

/* ---- how a call ended ---- */

static int is_tls_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_USE_SSL_FAILED:
		return 1;
	default:
		return 0;
	}
}

/* Turn curl's result into c->error and c->msg. Our own callbacks' verdicts
 * (c->error already set) win over the CURLE_WRITE_ERROR they caused. curl's
 * error buffer is only quoted for connect, timeout and TLS failures, whose
 * texts name hosts, sizes and reasons, never headers or bodies. */
void bcn_http_classify_(struct bcn_http_call *c, CURLcode rc)
{
	const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
	long sent = 0;

	if (c->error || rc == CURLE_OK)
		return;
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		curl_easy_getinfo(c->easy, CURLINFO_REQUEST_SIZE, &sent);
		/* Nothing sent yet and the connect timeout was the binding one: the
		 * peer is unreachable, which callers treat like a refusal (try the
		 * next endpoint). curl's connect timeout covers the TLS handshake. */
		if (sent == 0 && (c->timeout_ms == 0 || c->connect_timeout_ms < c->timeout_ms)) {
			c->error = BCN_HTTP_ECONNECT;
			snprintf(c->msg, sizeof(c->msg), "could not connect within %llu ms.",
				 (unsigned long long)c->connect_timeout_ms);
		} else {
			c->error = BCN_HTTP_ETIMEDOUT;
			snprintf(c->msg, sizeof(c->msg), "the request timed out: %s.", detail);
		}
		return;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		c->error = BCN_HTTP_ECONNECT;
		snprintf(c->msg, sizeof(c->msg), "could not connect: %s.", detail);
		return;
	case CURLE_FILESIZE_EXCEEDED: /* Content-Length above CURLOPT_MAXFILESIZE */
		c->error = BCN_HTTP_ETOOBIG;
		snprintf(c->msg, sizeof(c->msg), "the response body is larger than the %zu-byte limit.",
			 c->max_body);
		return;
	default:
		break;
	}
	if (is_tls_error(rc)) {
		c->error = BCN_HTTP_ETLS;
		/* The usual surprise: a certificate issued for a name, reached by IP. */
		snprintf(c->msg, sizeof(c->msg), "TLS failed: %s.%s", detail,
			 rc == CURLE_PEER_FAILED_VERIFICATION && strstr(detail, "host name") && !c->named_url
				 ? " Set tls.server_name to the host name the certificate was issued for."
				 : "");
	} else {
		c->error = BCN_HTTP_EOTHER;
		snprintf(c->msg, sizeof(c->msg), "the request failed: %s.", curl_easy_strerror(rc));
	}
}

/* ---- setting a call up ---- */

static long clamp_long(uint64_t v)
{
	return v > (uint64_t)LONG_MAX ? LONG_MAX : (long)v;
}

static int set_tls_file(CURL *easy, CURLoption opt, const char *path)
{
	if (!path || !*path)
		return 0;
	return curl_easy_setopt(easy, opt, path) == CURLE_OK ? 0 : -1;
}

/*
 * tls.server_name. libcurl takes the SNI and the name it checks from the
 * URL's host, so the URL gets server_name as its host, CONNECT_TO still
 * connects to the host the user wrote, and a Host header keeps that host for
 * the server: what Go's tls.Config.ServerName does for Vault's and Consul's
 * own tls_server_name. CONNECT_TO rather than CURLOPT_RESOLVE: it belongs to
 * this handle, not the multi's shared DNS cache, and curl keeps connections
 * to different addresses under one name apart by it. Only https URLs, and
 * never a Unix socket (no TLS there). Appends to c->req_headers, so it runs
 * before CURLOPT_HTTPHEADER is set.
 */
static int name_server(struct bcn_http_call *c, const struct bcn_http_opts *o)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *url = NULL;
	char line[1024];
	struct curl_slist *l;
	int rc = -1;

	if (!u || curl_url_set(u, CURLUPART_URL, o->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
		goto out;
	if (strcasecmp(scheme, "https") != 0) {
		rc = 0;
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
		port = NULL; /* none written: the Host header has none either */
	if ((size_t)snprintf(line, sizeof(line), "Host: %s%s%s", host, port ? ":" : "", port ? port : "") >=
	    sizeof(line))
		goto out;
	l = curl_slist_append(c->req_headers, line);
	if (!l)
		goto out;
	c->req_headers = l;
	/* "::HOST:" = any URL host and port go to HOST, at the URL's port. */
	if ((size_t)snprintf(line, sizeof(line), "::%s:", host) >= sizeof(line))
		goto out;
	c->connect_to = curl_slist_append(NULL, line);
	if (!c->connect_to || curl_url_set(u, CURLUPART_HOST, o->server_name, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK)
		goto out;
	c->named_url = strdup(url);
	rc = c->named_url ? 0 : -1;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(url);
	curl_url_cleanup(u);
	return rc;
}

/* Everything about the request except adding it to the multi. */
int bcn_http_call_setup_(struct bcn_http_call *c, const struct bcn_http_opts *o)
{
	CURL *e = c->easy;
	const char *method = o->method ? o->method : "GET";
	int has_body = o->body != NULL || strcasecmp(method, "POST") == 0 ||
		       strcasecmp(method, "PUT") == 0 || strcasecmp(method, "PATCH") == 0;
	int ok = 1;

	for (const char *const *hp = o->headers; hp && *hp; hp++) {
		struct curl_slist *l;

		if (strpbrk(*hp, "\r\n")) /* would smuggle extra headers or a second request */
			return -1;
		l = curl_slist_append(c->req_headers, *hp);
		if (!l)
			return -1;
		c->req_headers = l;
	}
	if (has_body) {
		/* curl would otherwise wait up to a second for "100 Continue" on large
		 * bodies; a caller can still ask for it with its own Expect header. */
		struct curl_slist *l = curl_slist_append(c->req_headers, "Expect:");

		if (!l)
			return -1;
		c->req_headers = l;
		c->req_body_len = o->body ? o->body_len : 0;
		c->req_body = malloc(c->req_body_len ? c->req_body_len : 1);
		if (!c->req_body)
			return -1;
		if (c->req_body_len)
			memcpy(c->req_body, o->body, c->req_body_len);
	}
	if (o->server_name && *o->server_name && !(o->unix_socket && *o->unix_socket) &&
	    name_server(c, o) < 0)
		return -1;

	ok &= curl_easy_setopt(e, CURLOPT_URL, c->named_url ? c->named_url : o->url) == CURLE_OK;
	if (c->connect_to)
		ok &= curl_easy_setopt(e, CURLOPT_CONNECT_TO, c->connect_to) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)c) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_WRITEDATA, c) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_HEADERDATA, c) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->req_headers) == CURLE_OK;
	/* Long watch streams sit idle for minutes; keepalive notices dead peers. */
	ok &= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, clamp_long(c->timeout_ms)) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, clamp_long(c->connect_timeout_ms)) == CURLE_OK;
	if (o->low_speed_ms) {
		ok &= curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
				       clamp_long(o->low_speed_ms / 1000 + (o->low_speed_ms % 1000 != 0))) == CURLE_OK;
	}
	if (!c->on_data) /* refuse early when Content-Length already says too big */
		ok &= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
				       (curl_off_t)(c->max_body > (size_t)INT64_MAX ? INT64_MAX
										    : (int64_t)c->max_body)) == CURLE_OK;
	if (o->unix_socket && *o->unix_socket)
		ok &= curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, o->unix_socket) == CURLE_OK;
	ok &= set_tls_file(e, CURLOPT_CAINFO, o->ca_file) == 0;
	ok &= set_tls_file(e, CURLOPT_SSLCERT, o->cert_file) == 0;
	ok &= set_tls_file(e, CURLOPT_SSLKEY, o->key_file) == 0;
	if (o->insecure_skip_verify) {
		ok &= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L) == CURLE_OK;
	}

	if (strcasecmp(method, "HEAD") == 0) {
		ok &= curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK;
	} else if (has_body) {
		ok &= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->req_body_len) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->req_body) == CURLE_OK;
		if (strcasecmp(method, "POST") != 0)
			ok &= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
	} else if (strcasecmp(method, "GET") != 0) {
		ok &= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
	}
	return ok ? 0 : -1;
}
