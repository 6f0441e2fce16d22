/*
 * Unit tests for the Mustache engine (template/mustache*.c), one test per
 * module of the official spec (interpolation, sections, inverted, comments,
 * partials, delimiters), with cases taken from the spec's own documents,
 * plus our choices (escape modes, numbers, errors with line:column, limits).
 */
#include <check.h>
#include <string.h>

#include "testutil.h"
#include "template/mustache.h"

struct tcase_ {
	const char *tmpl, *data, *expect;
};

/* Partials come from a JSON object {"name": "text"}. */
static char *load_json(void *arg, const char *name, size_t *len, char *file, size_t filelen)
{
	json_t *v = json_object_get((json_t *)arg, name);

	if (!json_is_string(v))
		return NULL;
	snprintf(file, filelen, "%s.mustache", name);
	*len = json_string_length(v);
	return strdup(json_string_value(v));
}

static void render_is(const char *tmpl, const char *data, const char *partials,
		      enum bcn_mst_escape esc, const char *expect)
{
	json_error_t jerr;
	json_t *d = json_loads(data, JSON_DECODE_ANY, &jerr);
	json_t *p = partials ? json_loads(partials, 0, &jerr) : NULL;
	struct bcn_mst_error err;
	struct bcn_mst *t;
	struct bcn_mst_out out = { 0 };
	char msg[200];

	ck_assert_msg(d != NULL, "bad test data %s", data);
	t = bcn_mst_parse(tmpl, strlen(tmpl), "t", p ? load_json : NULL, p, &err);
	ck_assert_msg(t != NULL, "%s: %u:%u %s", tmpl, err.line, err.col, err.msg);
	ck_assert_int_eq(bcn_mst_render(t, d, esc, &out, msg, sizeof(msg)), 0);
	ck_assert_msg(strcmp(out.p, expect) == 0, "template %s\ngot  [%s]\nwant [%s]", tmpl, out.p, expect);
	bcn_mst_out_free(&out);
	bcn_mst_free(t);
	json_decref(d);
	json_decref(p);
}

static void table(const struct tcase_ *c, size_t n, const char *partials, enum bcn_mst_escape esc)
{
	for (size_t i = 0; i < n; i++)
		render_is(c[i].tmpl, c[i].data, partials, esc, c[i].expect);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(test_interpolation)
{
	static const struct tcase_ c[] = {
		{ "Hello from {Mustache}!\n", "{}", "Hello from {Mustache}!\n" },
		{ "Hello, {{subject}}!\n", "{\"subject\":\"world\"}", "Hello, world!\n" },
		{ "{{forbidden}}", "{\"forbidden\":\"& \\\" < >\"}", "&amp; &quot; &lt; &gt;" },
		{ "{{{forbidden}}}", "{\"forbidden\":\"& \\\" < >\"}", "& \" < >" },
		{ "{{&forbidden}}", "{\"forbidden\":\"& \\\" < >\"}", "& \" < >" },
		{ "\"{{mph}} miles an hour!\"", "{\"mph\":85}", "\"85 miles an hour!\"" },
		{ "\"{{power}} jiggawatts!\"", "{\"power\":1.21}", "\"1.21 jiggawatts!\"" },
		{ "I ({{cannot}}) be seen!", "{}", "I () be seen!" },
		{ "I ({{cannot}}) be seen!", "{\"cannot\":null}", "I () be seen!" },
		{ "\"{{person.name}}\" == \"{{#person}}{{name}}{{/person}}\"",
		  "{\"person\":{\"name\":\"Joe\"}}", "\"Joe\" == \"Joe\"" },
		{ "\"{{a.b.c.d.e.name}}\"", "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"name\":\"Phil\"}}}}}}",
		  "\"Phil\"" },
		{ "\"{{a.b.c}}\"", "{\"a\":{\"b\":{}},\"c\":\"ERROR\"}", "\"\"" },
		{ "\"{{#a}}{{b.c}}{{/a}}\"", "{\"a\":{\"b\":{}},\"b\":{\"c\":\"ERROR\"}}", "\"\"" },
		{ "\"{{#a}}{{b.c.d.e.name}}{{/a}}\"",
		  "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"name\":\"Phil\"}}}}},\"b\":{\"c\":{\"d\":{\"e\":{\"name\":\"Wrong\"}}}}}",
		  "\"Phil\"" },
		{ "\"{{.}}\"", "\"hello\"", "\"hello\"" },
		{ "| {{string}} |", "{\"string\":\"---\"}", "| --- |" },
		{ "  {{string}}\n", "{\"string\":\"---\"}", "  ---\n" },
		{ "|{{ string }}|", "{\"string\":\"---\"}", "|---|" },
		{ "|{{{ string }}}|", "{\"string\":\"---\"}", "|---|" },
		{ "{{a}} {{b}} {{c}} {{d}}", "{\"a\":1e20,\"b\":0.00001,\"c\":-2.5,\"d\":3.0}",
		  "1e+20 1e-05 -2.5 3.0" },
		{ "{{t}} {{f}} {{o}}", "{\"t\":true,\"f\":false,\"o\":{\"x\":[1]}}", "true false {&quot;x&quot;:[1]}" },
	};
	table(c, N(c), NULL, BCN_MST_ESC_HTML);
}
END_TEST

START_TEST(test_sections)
{
	static const struct tcase_ c[] = {
		{ "\"{{#boolean}}This should be rendered.{{/boolean}}\"", "{\"boolean\":true}",
		  "\"This should be rendered.\"" },
		{ "\"{{#boolean}}This should not be rendered.{{/boolean}}\"", "{\"boolean\":false}", "\"\"" },
		{ "\"{{#null}}This should not be rendered.{{/null}}\"", "{\"null\":null}", "\"\"" },
		{ "\"{{#context}}Hi {{name}}.{{/context}}\"", "{\"context\":{\"name\":\"Joe\"}}", "\"Hi Joe.\"" },
		{ "\"{{#list}}{{item}}{{/list}}\"", "{\"list\":[{\"item\":1},{\"item\":2},{\"item\":3}]}",
		  "\"123\"" },
		{ "\"{{#list}}Yay lists!{{/list}}\"", "{\"list\":[]}", "\"\"" },
		{ "{{#bool}}\n* first\n{{/bool}}\n* {{two}}\n{{#bool}}\n* third\n{{/bool}}\n",
		  "{\"bool\":true,\"two\":\"second\"}", "* first\n* second\n* third\n" },
		{ "| {{#bool}}{{#bool}}x{{/bool}}{{/bool}} |", "{\"bool\":true}", "| x |" },
		{ "\"{{#list}}({{.}}){{/list}}\"", "{\"list\":[1,2,3,4,5]}", "\"(1)(2)(3)(4)(5)\"" },
		{ "\"{{#list}}({{#.}}{{.}}{{/.}}){{/list}}\"", "{\"list\":[[1,2,3],[\"a\",\"b\",\"c\"]]}",
		  "\"(123)(abc)\"" },
		{ "\"{{#a.b.c}}Here{{/a.b.c}}\" == \"Here\"", "{\"a\":{\"b\":{\"c\":true}}}", "\"Here\" == \"Here\"" },
		{ "\"{{#a.b.c}}Here{{/a.b.c}}\" == \"\"", "{\"a\":{}}", "\"\" == \"\"" },
		{ "| This Is\n{{#boolean}}\n|\n{{/boolean}}\n| A Line\n", "{\"boolean\":true}",
		  "| This Is\n|\n| A Line\n" },
		{ "| This Is\n  {{#boolean}}\n|\n  {{/boolean}}\n| A Line\n", "{\"boolean\":true}",
		  "| This Is\n|\n| A Line\n" },
		{ "|\r\n{{#boolean}}\r\n{{/boolean}}\r\n|", "{\"boolean\":true}", "|\r\n|" },
		{ "  {{#boolean}}\n#{{/boolean}}\n/", "{\"boolean\":true}", "#\n/" },
		{ "#{{#boolean}}\n/\n  {{/boolean}}", "{\"boolean\":true}", "#\n/\n" },
		{ " | {{#boolean}}\t|\t{{/boolean}} | \n", "{\"boolean\":true}", " | \t|\t | \n" },
		{ "|{{# boolean }}={{/ boolean }}|", "{\"boolean\":true}", "|=|" },
		/* our pystache-compatible truth: "", 0 and {} are false */
		{ "[{{#s}}x{{/s}}{{#z}}y{{/z}}{{#o}}z{{/o}}]", "{\"s\":\"\",\"z\":0,\"o\":{}}", "[]" },
		{ "{{#a}}{{#b}}{{c}}{{/b}}{{/a}}", "{\"a\":{\"b\":\"str\"},\"c\":\"outer\"}", "outer" },
	};
	table(c, N(c), NULL, BCN_MST_ESC_HTML);
}
END_TEST

START_TEST(test_inverted)
{
	static const struct tcase_ c[] = {
		{ "\"{{^boolean}}This should be rendered.{{/boolean}}\"", "{\"boolean\":false}",
		  "\"This should be rendered.\"" },
		{ "\"{{^boolean}}This should not be rendered.{{/boolean}}\"", "{\"boolean\":true}", "\"\"" },
		{ "\"{{^list}}Yay lists!{{/list}}\"", "{\"list\":[]}", "\"Yay lists!\"" },
		{ "\"{{^list}}{{n}}{{/list}}\"", "{\"list\":[{\"n\":1}]}", "\"\"" },
		{ "[{{^missing}}Found key 'missing'!{{/missing}}]", "{}", "[Found key 'missing'!]" },
		{ "\"{{^a.b.c}}Not Here{{/a.b.c}}\" == \"Not Here\"", "{\"a\":{}}",
		  "\"Not Here\" == \"Not Here\"" },
		{ "| This Is\n{{^boolean}}\n|\n{{/boolean}}\n| A Line\n", "{\"boolean\":false}",
		  "| This Is\n|\n| A Line\n" },
		{ "^{{^boolean}}\n/\n  {{/boolean}}", "{\"boolean\":false}", "^\n/\n" },
	};
	table(c, N(c), NULL, BCN_MST_ESC_HTML);
}
END_TEST

START_TEST(test_comments)
{
	static const struct tcase_ c[] = {
		{ "12345{{! Comment Block! }}67890", "{}", "1234567890" },
		{ "12345{{!\n  This is a\n  multi-line comment...\n}}67890\n", "{}", "1234567890\n" },
		{ "Begin.\n{{! Comment Block! }}\nEnd.\n", "{}", "Begin.\nEnd.\n" },
		{ "Begin.\n  {{! Indented Comment Block! }}\nEnd.\n", "{}", "Begin.\nEnd.\n" },
		{ "|\r\n{{! Standalone Comment }}\r\n|", "{}", "|\r\n|" },
		{ "  {{! I'm Still Standalone }}\n!", "{}", "!" },
		{ "!\n  {{! I'm Still Standalone }}", "{}", "!\n" },
		{ "Begin.\n{{!\nSomething's going on here...\n}}\nEnd.\n", "{}", "Begin.\nEnd.\n" },
		{ "  12 {{! 34 }}\n", "{}", "  12 \n" },
		{ "12345 {{! Comment Block! }} 67890", "{}", "12345  67890" },
	};
	table(c, N(c), NULL, BCN_MST_ESC_HTML);
}
END_TEST

START_TEST(test_partials)
{
	static const char *parts =
		"{\"text\":\"from partial\",\"partial\":\"*{{text}}*\",\"node\":\"{{content}}<{{#nodes}}{{>node}}{{/nodes}}>\","
		"\"ind\":\"|\\n{{{content}}}\\n|\\n\",\"outer\":\"*{{a}} {{>inner}}*\",\"inner\":\"{{a}}!\"}";
	static const struct tcase_ c[] = {
		{ "\"{{>text}}\"", "{}", "\"from partial\"" },
		{ "\"{{>missing}}\"", "{}", "\"\"" },
		{ "\"{{>partial}}\"", "{\"text\":\"content\"}", "\"*content*\"" },
		{ "{{>node}}", "{\"content\":\"X\",\"nodes\":[{\"content\":\"Y\",\"nodes\":[]}]}", "X<Y<>>" },
		{ "| {{>partial}} |", "{\"text\":\"x\"}", "| *x* |" },
		{ "  {{data}}  {{> partial}}\n", "{\"data\":\"|\",\"text\":\"x\"}", "  |  *x*\n" },
		{ "\\\n {{>ind}}\n/\n", "{\"content\":\"<\\n->\"}", "\\\n |\n <\n->\n |\n/\n" },
		{ "|{{> partial }}|", "{\"text\":\"[]\"}", "|*[]*|" },
		{ "{{>outer}}", "{\"a\":1}", "*1 1!*" },
	};
	table(c, N(c), parts, BCN_MST_ESC_HTML);
}
END_TEST

START_TEST(test_delimiters)
{
	static const struct tcase_ c[] = {
		{ "{{=<% %>=}}(<%text%>)", "{\"text\":\"Hey!\"}", "(Hey!)" },
		{ "({{=[ ]=}}[text])", "{\"text\":\"It worked!\"}", "(It worked!)" },
		{ "[\n{{#section}}\n  {{data}}\n  |data|\n{{/section}}\n\n{{= | | =}}\n|#section|\n  {{data}}\n  |data|\n|/section|\n]\n",
		  "{\"section\":true,\"data\":\"I got interpolated.\"}",
		  "[\n  I got interpolated.\n  |data|\n\n  {{data}}\n  I got interpolated.\n]\n" },
		{ "| {{=@ @=}} |", "{}", "|  |" },
		{ "Begin.\n{{=@ @=}}\nEnd.\n", "{}", "Begin.\nEnd.\n" },
		{ "Begin.\n  {{=@ @=}}\nEnd.\n", "{}", "Begin.\nEnd.\n" },
		{ "  {{=@ @=}}\n=", "{}", "=" },
		{ "=\n  {{=@ @=}}", "{}", "=\n" },
		{ "|{{= @   @ =}}|", "{}", "||" },
		{ "{{=<% %>=}}<%{x}%> <%&x%> <%x%>", "{\"x\":\"<\"}", "< < &lt;" },
	};
	table(c, N(c), NULL, BCN_MST_ESC_HTML);
}
END_TEST

START_TEST(test_escape_modes)
{
	render_is("{{v}}", "{\"v\":\"a<b>&\\\"c\\\"\\n\\\\\"}", NULL, BCN_MST_ESC_NONE, "a<b>&\"c\"\n\\");
	render_is("{{v}}", "{\"v\":\"a\\\"b\\\\c\\n\\t\\u0001\"}", NULL, BCN_MST_ESC_JSON,
		  "a\\\"b\\\\c\\n\\t\\u0001");
	render_is("{{{v}}}", "{\"v\":\"a\\\"b\"}", NULL, BCN_MST_ESC_JSON, "a\"b");
	enum bcn_mst_escape e;
	ck_assert(bcn_mst_escape_parse("json", &e) && e == BCN_MST_ESC_JSON);
	ck_assert(!bcn_mst_escape_parse("xml", &e));
}
END_TEST

/* A section fills its slots from each item in one walk of its keys
 * (mustache_internal.h): every way a name can resolve around that walk. */
START_TEST(test_item_lookup)
{
	static const struct tcase_ c[] = {
		/* absent from an item: the outer context answers */
		{ "{{#l}}{{n}}-{{x}};{{/l}}", "{\"x\":\"X\",\"l\":[{\"n\":1},{\"n\":2,\"x\":\"y\"},{\"n\":3}]}",
		  "1-X;2-y;3-X;" },
		/* items that are not objects */
		{ "{{#l}}{{.}}{{x}}{{/l}}", "{\"x\":\"!\",\"l\":[1,\"a\",null,[2]]}", "1!a!![2]!" },
		/* an inverted section pushes nothing; a true one pushes true */
		{ "{{#l}}{{^on}}off:{{n}}{{/on}}{{#on}}on:{{n}}{{/on}} {{/l}}",
		  "{\"l\":[{\"n\":1,\"on\":true},{\"n\":2}]}", "on:1 off:2 " },
		/* dotted names sharing their first part, and the part alone */
		{ "{{#l}}{{a.b}}{{a.c}}{{a}}{{/l}}", "{\"l\":[{\"a\":{\"b\":1,\"c\":2}}]}",
		  "12{\"b\":1,\"c\":2}" },
		/* a broken chain is empty, never looked up further out */
		{ "{{#l}}[{{a.b}}]{{/l}}", "{\"a\":{\"b\":\"outer\"},\"l\":[{\"a\":{}}]}", "[]" },
		/* keys that are prefixes of one another */
		{ "{{#l}}{{ab}}{{a}}{{abc}}{{/l}}", "{\"abc\":3,\"l\":[{\"a\":1,\"ab\":2}]}", "213" },
		/* nested sections: the inner item, then the outer one */
		{ "{{#l}}{{#tags}}{{.}}{{n}}{{/tags}}|{{/l}}",
		  "{\"l\":[{\"n\":1,\"tags\":[\"a\",\"b\"]},{\"n\":2,\"tags\":[]}]}", "a1b1||" },
		/* more names than slots */
		{ "{{#o}}{{a}}{{b}}{{c}}{{d}}{{e}}{{f}}{{g}}{{h}}{{i}}{{j}}{{k}}{{l}}{{m}}{{n}}{{p}}{{q}}"
		  "{{r}}{{s}}{{z}}{{/o}}",
		  "{\"z\":\"Z\",\"o\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,"
		  "\"j\":0,\"k\":1,\"l\":2,\"m\":3,\"n\":4,\"p\":5,\"q\":6,\"r\":7,\"s\":8}}",
		  "123456789012345678Z" },
		/* a large object (found by hash) and names it lacks */
		{ "{{#o}}{{m}}{{a}}{{y}}{{/o}}",
		  "{\"y\":\"Y\",\"o\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,"
		  "\"j\":0,\"k\":1,\"l\":2,\"m\":3}}", "31Y" },
		/* a partial inside a section sees the item */
		{ "{{#l}}{{>p}}{{/l}}", "{\"n\":0,\"l\":[{\"n\":1},{\"m\":2}]}", "1,0," },
	};
	table(c, N(c), "{\"p\":\"{{n}},\"}", BCN_MST_ESC_NONE);
}
END_TEST

/* A long list is sized after its first items (mustache_render.c): items
 * that then grow, and a limit the guess would pass, change nothing. */
START_TEST(test_long_lists)
{
	struct bcn_mst_error err;
	struct bcn_mst *t = bcn_mst_parse("{{#l}}{{.}};{{/l}}", 18, "t", NULL, NULL, &err);
	json_t *l = json_array(), *d = json_pack("{s:o}", "l", l);
	struct bcn_mst_out out = { 0 };
	char msg[120], *want = calloc(1, 1 << 20), item[600];
	size_t wlen = 0;

	ck_assert_ptr_nonnull(t);
	for (int i = 0; i < 3000; i++) {
		/* 16 short items, then longer ones (3000: long enough to prefetch) */
		int n = i < 16 ? 1 : i % 500;
		memset(item, 'a' + i % 26, (size_t)n);
		item[n] = 0;
		json_array_append_new(l, json_string(item));
		memcpy(want + wlen, item, (size_t)n);
		wlen += (size_t)n;
		want[wlen++] = ';';
	}
	ck_assert_int_eq(bcn_mst_render(t, d, BCN_MST_ESC_NONE, &out, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(out.len, wlen);
	ck_assert(memcmp(out.p, want, wlen) == 0 && out.p[wlen] == 0);
	bcn_mst_out_free(&out);

	/* after 16 items the rest would pass the limit: still the limit's error */
	json_array_clear(l);
	for (int i = 0; i < 100; i++)
		json_array_append_new(l, json_string("ab"));
	out.max = 250;
	ck_assert_int_eq(bcn_mst_render(t, d, BCN_MST_ESC_NONE, &out, msg, sizeof(msg)), -1);
	ck_assert(strstr(msg, "size limit"));
	ck_assert_uint_le(out.cap, 251);
	/* ... and one that just fits renders whole */
	out.len = 0;
	out.max = 300;
	ck_assert_int_eq(bcn_mst_render(t, d, BCN_MST_ESC_NONE, &out, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(out.len, 300);
	bcn_mst_out_free(&out);
	free(want);
	json_decref(d);
	bcn_mst_free(t);
}
END_TEST

static void error_at(const char *tmpl, unsigned line, unsigned col, const char *words)
{
	struct bcn_mst_error err;
	struct bcn_mst *t = bcn_mst_parse(tmpl, strlen(tmpl), "f.tmpl", NULL, NULL, &err);

	ck_assert_msg(t == NULL, "%s parsed", tmpl);
	ck_assert_msg(err.line == line && err.col == col, "%s: error at %u:%u (%s), want %u:%u", tmpl,
		      err.line, err.col, err.msg, line, col);
	ck_assert_msg(strstr(err.msg, words), "%s: %s", tmpl, err.msg);
	ck_assert_str_eq(err.file, "f.tmpl");
}

START_TEST(test_errors_have_line_and_column)
{
	error_at("a\n  {{#x}}\nb", 2, 3, "never closed");
	error_at("a\nb {{x", 2, 3, "never closed");
	error_at("{{#a}}\n{{/b}}", 2, 1, "does not close");
	error_at("x{{/b}}", 1, 2, "never opened");
	error_at("\n\n   {{ }}", 3, 4, "needs a name");
	error_at("{{a b}}", 1, 1, "no spaces");
	error_at("{{=<% =}}", 1, 1, "two delimiters");
	error_at("{{a..b}}", 1, 1, "empty part");
	error_at("{{{a}}", 1, 1, "never closed");
}
END_TEST

static void collect(void *arg, const char *name)
{
	json_array_append_new(arg, json_string(name));
}

START_TEST(test_names_and_limits)
{
	const char *src = "{{a.b}}{{#s}}{{x}}{{/s}}{{a.b}}{{^i}}{{/i}}{{{r}}}";
	struct bcn_mst_error err;
	struct bcn_mst *t = bcn_mst_parse(src, strlen(src), "t", NULL, NULL, &err);
	json_t *names = json_array();
	char *dump;

	ck_assert_ptr_nonnull(t);
	bcn_mst_names(t, collect, names);
	dump = json_dumps(names, JSON_COMPACT);
	ck_assert_str_eq(dump, "[\"a.b\",\"s\",\"x\",\"i\",\"r\"]");
	free(dump);
	json_decref(names);

	/* The output limit is an error, not a truncated file. */
	json_t *d = json_pack("{s:[iiii]}", "s", 1, 2, 3, 4);
	struct bcn_mst_out out = { .max = 10 };
	char msg[120];
	bcn_mst_free(t);
	t = bcn_mst_parse("{{#s}}abc{{/s}}", 15, "t", NULL, NULL, &err);
	ck_assert_int_eq(bcn_mst_render(t, d, BCN_MST_ESC_NONE, &out, msg, sizeof(msg)), -1);
	ck_assert(strstr(msg, "size limit"));
	bcn_mst_out_free(&out);
	bcn_mst_free(t);
	json_decref(d);

	/* A self-recursive partial stops at the depth limit with an error. */
	json_t *p = json_pack("{s:s}", "me", "x{{>me}}");
	t = bcn_mst_parse("{{>me}}", 7, "t", load_json, p, &err);
	ck_assert_ptr_nonnull(t);
	struct bcn_mst_out o2 = { 0 };
	ck_assert_int_eq(bcn_mst_render(t, NULL, BCN_MST_ESC_NONE, &o2, msg, sizeof(msg)), -1);
	ck_assert(strstr(msg, "too deep"));
	bcn_mst_out_free(&o2);
	bcn_mst_free(t);
	/* ... and one whose standalone indentation grows is a parse error. */
	json_object_set_new(p, "me", json_string("x\n  {{>me}}\n"));
	t = bcn_mst_parse("{{>me}}", 7, "t", load_json, p, &err);
	ck_assert_ptr_null(t);
	ck_assert(strstr(err.msg, "partials"));
	json_decref(p);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("mustache");
	TCase *tc = tcase_create("spec");

	tcase_add_test(tc, test_interpolation);
	tcase_add_test(tc, test_sections);
	tcase_add_test(tc, test_inverted);
	tcase_add_test(tc, test_comments);
	tcase_add_test(tc, test_partials);
	tcase_add_test(tc, test_delimiters);
	tcase_add_test(tc, test_escape_modes);
	tcase_add_test(tc, test_item_lookup);
	tcase_add_test(tc, test_long_lists);
	tcase_add_test(tc, test_errors_have_line_and_column);
	tcase_add_test(tc, test_names_and_limits);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(suite)
