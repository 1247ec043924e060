/* The Win32 names do not clash with other code: the library exports only
 * mailslot_* symbols, so a program (or another library it links) may
 * define its own global ReadFile or CloseHandle. With MAILSLOT_W32_NO_MACROS
 * the header declares the prefixed names only. */
#define MAILSLOT_W32_NO_MACROS
#include <mailslot/win32.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif
/* Someone else's functions with Win32 names, global and exported. */
int ReadFile(const char *path);
int CloseHandle(int fd);
int ReadFile(const char *path) { return path != NULL; }
int CloseHandle(int fd) { return fd == 42; }
#ifdef __cplusplus
}
#endif

int main(void) {
    HANDLE h = mailslot_w32_CreateMailslotA("\\\\.\\mailslot\\no-clash", 0, 0, NULL);
    HANDLE w = mailslot_w32_CreateFileA("\\\\.\\mailslot\\no-clash", GENERIC_WRITE, FILE_SHARE_READ, NULL,
                                        OPEN_EXISTING, 0, NULL);
    char buf[8];
    DWORD n = 0;
    int ok = h != INVALID_HANDLE_VALUE && w != INVALID_HANDLE_VALUE &&
             mailslot_w32_WriteFile(w, "ok", 2, &n, NULL) && mailslot_w32_ReadFile(h, buf, sizeof buf, &n, NULL) &&
             n == 2 && ReadFile("x") && CloseHandle(42) && mailslot_w32_CloseHandle(w) && mailslot_w32_CloseHandle(h);
    printf("no_clash: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
