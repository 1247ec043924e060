/* A mailslot client written for Windows: CreateFile, WriteFile. It builds
 * unchanged on Linux against libmailslot:
 *
 *   cc win32_client.c $(pkg-config --cflags --libs mailslot) \
 *      -I$(pkg-config --variable=includedir mailslot)/mailslot/compat
 *
 * Usage: win32_client [MESSAGE...] (each argument is one message; "" is a
 * zero-length one). Set MAILSLOT_TARGET to write elsewhere, e.g.
 * \\*\mailslot\sample_mailslot for every host of the workgroup. */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *target = getenv("MAILSLOT_TARGET");
    HANDLE file = CreateFileA(target ? target : "\\\\.\\mailslot\\sample_mailslot", GENERIC_WRITE,
                              FILE_SHARE_READ, (LPSECURITY_ATTRIBUTES)NULL, OPEN_EXISTING,
                              FILE_ATTRIBUTE_NORMAL, (HANDLE)NULL);
    if (file == INVALID_HANDLE_VALUE) {
        printf("CreateFile failed with %u\n", (unsigned)GetLastError());
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        DWORD written = 0;
        if (!WriteFile(file, argv[i], (DWORD)strlen(argv[i]), &written, (LPOVERLAPPED)NULL)) {
            printf("WriteFile failed with %u\n", (unsigned)GetLastError());
            return 1;
        }
        printf("slot written to successfully: %u bytes\n", (unsigned)written);
    }
    CloseHandle(file);
    return 0;
}
