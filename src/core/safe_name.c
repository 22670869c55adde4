/* safe_name.c - the one rule for names that become file names (safe_name.h). */
#include "cbctiq/safe_name.h"

#include <stdio.h>
#include <string.h>

static int is_control(unsigned char c) { return c < 32 || c == 127; }

/* The name for a message: at most 64 bytes, control characters as '?'. */
static void printable(char *out, size_t cap, const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p && n + 1 < cap && n < 64; p++)
        out[n++] = is_control((unsigned char)*p) ? '?' : *p;
    out[n] = '\0';
}

int cbq_name_ok(const char *name, char *why, size_t cap)
{
    const char *problem = NULL;
    char control[48];
    if (!name[0])
        problem = "is empty";
    else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        problem = "is a folder name ('.' or '..')";
    else if (strchr(name, '/'))
        problem = "contains '/'";
    else if (strchr(name, '\\'))
        problem = "contains '\\'";
    for (const char *p = name; !problem && *p; p++)
        if (is_control((unsigned char)*p)) {
            snprintf(control, sizeof control, "contains the control character 0x%02X",
                     (unsigned)(unsigned char)*p);
            problem = control;
        }
    if (!problem)
        return 1;
    char shown[72];
    printable(shown, sizeof shown, name);
    snprintf(why, cap, "'%s' %s", shown, problem);
    return 0;
}
