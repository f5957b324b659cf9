/*
 * plugins/codecs/rot13.c -- the module codecs.rot13: a dotted module with
 * encode/decode exports and a `main` that encodes its arguments.
 *
 *   void encode(const char *in, char *out, size_t size)   (out: NUL-ended)
 *   void decode(const char *in, char *out, size_t size)
 */
#include <cjson/cJSON.h>
#include <modhost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void rot13(const char *in, char *out, size_t size)
{
    size_t i = 0;
    if (size == 0)
        return;
    for (; in[i] && i + 1 < size; i++) {
        char c = in[i];
        if (c >= 'a' && c <= 'z')
            c = (char)('a' + (c - 'a' + 13) % 26);
        else if (c >= 'A' && c <= 'Z')
            c = (char)('A' + (c - 'A' + 13) % 26);
        out[i] = c;
    }
    out[i] = '\0';
}

static void encode(const char *in, char *out, size_t size)
{
    rot13(in, out, size);
}

static void decode(const char *in, char *out, size_t size)
{
    rot13(in, out, size); /* rot13 is its own inverse */
}

static int rot13_main(int argc, char **argv)
{
    char buf[4096];
    for (int i = 1; i < argc; i++) {
        encode(argv[i], buf, sizeof buf);
        printf("%s%s", i > 1 ? " " : "", buf);
    }
    printf("\n");
    return 0;
}

/* JSON call: encode("text") -> "grkg" (modhost call codecs.rot13 encode
 * '["text"]'). */
static int call_encode(const mh_host_api *api, mh_plugin *self,
                       const char *args, mh_call_out *out)
{
    (void)self;
    cJSON *a = cJSON_Parse(args);
    const cJSON *s = cJSON_GetArrayItem(a, 0);
    if (!cJSON_IsString(s) || cJSON_GetArraySize(a) != 1) {
        cJSON_Delete(a);
        api->call_error(out, "encode takes one string");
        return 1;
    }
    size_t n = strlen(s->valuestring) + 1;
    char *buf = malloc(n);
    cJSON *r = buf ? (rot13(s->valuestring, buf, n), cJSON_CreateString(buf))
                   : NULL;
    char *text = r ? cJSON_PrintUnformatted(r) : NULL;
    if (text)
        api->call_return(out, text);
    else
        api->call_error(out, "out of memory");
    cJSON_free(text);
    cJSON_Delete(r);
    free(buf);
    cJSON_Delete(a);
    return text ? 0 : 1;
}

static int rot13_init(const mh_host_api *api, mh_plugin *self)
{
    api->log(self, MH_PLUGIN_LOG_TRACE, "rot13 ready");
    return 0;
}

/* Readable without loading the plugin (`modhost show codecs.rot13`); the
 * "codec" entry point is the JSON call below (`modhost list --provides
 * codec`). */
MH_PLUGIN_MANIFEST("{\"name\": \"codecs.rot13\", \"version\": \"1.0.0\","
                   " \"description\": \"ROT13 text codec\","
                   " \"modhost\": \">=0.1\","
                   " \"provides\": {\"codec\": \"call:encode\"}}")

MH_PLUGIN("codecs.rot13", "1.0.0", rot13_init, NULL,
          MH_EXPORT("encode", encode),
          MH_EXPORT("decode", decode),
          MH_EXPORT("main", rot13_main),
          MH_CALL("encode", call_encode))
