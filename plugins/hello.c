/*
 * plugins/hello.c -- the smallest useful plugin: `modhost run hello ARGS`
 * prints a greeting and its arguments.
 */
#include <modhost/plugin.h>
#include <stdio.h>

static int hello_main(int argc, char **argv)
{
    printf("hello from the modhost plugin '%s'", argv[0]);
    for (int i = 1; i < argc; i++)
        printf("%s %s", i == 1 ? ", args:" : "", argv[i]);
    printf("\n");
    return 0;
}

static const char *greeting(void)
{
    return "hello";
}

/* Readable without loading the plugin: `modhost show hello`. */
MH_PLUGIN_MANIFEST("{\"name\": \"hello\", \"version\": \"1.0.0\","
                   " \"description\": \"Prints a greeting and its arguments\","
                   " \"modhost\": \">=0.1\"}")

MH_PLUGIN("hello", "1.0.0", NULL, NULL,
          MH_EXPORT("main", hello_main),
          MH_EXPORT("greeting", greeting))
