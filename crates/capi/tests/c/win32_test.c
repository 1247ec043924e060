/* Every function of mailslot/win32.h, with Windows' error numbers and
 * behaviour (docs/windows-semantics.md), against the installed library.
 * Built four ways by tests/c/run.sh: C11 and C++17, ANSI and UNICODE, and
 * through the stand-in <windows.h> (MAILSLOT_TEST_WINDOWS_H). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#ifdef MAILSLOT_TEST_WINDOWS_H
#include <windows.h>
#else
#include <mailslot/win32.h>
#endif
#include "check.h"
#include "udp.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Windows' sizes. */
#ifdef __cplusplus
static_assert(sizeof(DWORD) == 4, "DWORD");
static_assert(sizeof(BOOL) == 4, "BOOL");
static_assert(sizeof(WCHAR) == 2, "WCHAR");
static_assert(sizeof(HANDLE) == sizeof(void *), "HANDLE");
#else
_Static_assert(sizeof(DWORD) == 4, "DWORD");
_Static_assert(sizeof(BOOL) == 4, "BOOL");
_Static_assert(sizeof(WCHAR) == 2, "WCHAR");
_Static_assert(sizeof(HANDLE) == sizeof(void *), "HANDLE");
#endif

#define FAILS_WITH(call, code) (SetLastError(0), !(call) && GetLastError() == (code))

static void test_constants(void) {
    CHECK(MAILSLOT_NO_MESSAGE == 0xFFFFFFFFu);
    CHECK(MAILSLOT_WAIT_FOREVER == 0xFFFFFFFFu);
    CHECK(ERROR_FILE_NOT_FOUND == 2 && ERROR_PATH_NOT_FOUND == 3 && ERROR_ACCESS_DENIED == 5);
    CHECK(ERROR_INVALID_HANDLE == 6 && ERROR_SHARING_VIOLATION == 32 && ERROR_BAD_NETPATH == 53);
    CHECK(ERROR_INVALID_PARAMETER == 87 && ERROR_SEM_TIMEOUT == 121);
    CHECK(ERROR_INSUFFICIENT_BUFFER == 122 && ERROR_INVALID_NAME == 123 && ERROR_ALREADY_EXISTS == 183);
    CHECK(INVALID_HANDLE_VALUE == (HANDLE)(intptr_t)-1);
    SetLastError(1234);
    CHECK(GetLastError() == 1234);
    SetLastError(ERROR_SUCCESS);
    CHECK(GetLastError() == 0);
}

/* The classic server: CreateMailslot, GetMailslotInfo, ReadFile. */
static void test_server_and_client(void) {
    HANDLE server = CreateMailslot(TEXT("\\\\.\\mailslot\\win32\\basics"), 0, 0, NULL);
    REQUIRE(server != INVALID_HANDLE_VALUE && server != NULL);

    DWORD max = 1, next = 1, count = 1, timeout = 1;
    CHECK(GetMailslotInfo(server, &max, &next, &count, &timeout));
    CHECK(max == 0 && next == MAILSLOT_NO_MESSAGE && count == 0 && timeout == 0);
    CHECK(GetMailslotInfo(server, NULL, NULL, NULL, NULL)); /* every output is optional */

    /* A second server for the same name (case-insensitive). */
    CHECK(CreateMailslot(TEXT("\\\\.\\MailSlot\\WIN32\\Basics"), 0, 0, NULL) == INVALID_HANDLE_VALUE);
    CHECK(GetLastError() == ERROR_ALREADY_EXISTS);

    HANDLE client = CreateFile(TEXT("\\\\.\\mailslot\\win32\\basics"), GENERIC_WRITE, FILE_SHARE_READ,
                               NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    REQUIRE(client != INVALID_HANDLE_VALUE);
    /* A second client, asking for read access too (allowed; reads fail). */
    HANDLE client2 = CreateFileA("\\\\.\\mailslot\\win32\\basics", GENERIC_READ | GENERIC_WRITE,
                                 FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_EXISTING, 0, NULL);
    REQUIRE(client2 != INVALID_HANDLE_VALUE);

    DWORD n = 99;
    char buf[64];
    /* Roles: the server cannot write, a client cannot read. */
    CHECK(FAILS_WITH(WriteFile(server, "x", 1, &n, NULL), ERROR_ACCESS_DENIED));
    CHECK(n == 0);
    n = 99;
    CHECK(FAILS_WITH(ReadFile(client, buf, sizeof buf, &n, NULL), ERROR_INVALID_PARAMETER));
    CHECK(n == 0);
    CHECK(FAILS_WITH(GetMailslotInfo(client, &max, NULL, NULL, NULL), ERROR_INVALID_PARAMETER));
    CHECK(FAILS_WITH(SetMailslotInfo(client, 0), ERROR_INVALID_PARAMETER));

    CHECK(WriteFile(client, "ab", 2, &n, NULL) && n == 2);
    CHECK(WriteFile(client2, "cde", 3, &n, NULL) && n == 3);
    CHECK(WriteFile(client, NULL, 0, &n, NULL) && n == 0); /* zero-length message */
    CHECK(GetMailslotInfo(server, NULL, &next, &count, NULL));
    CHECK(next == 2 && count == 3);

    /* A short buffer: ERROR_INSUFFICIENT_BUFFER, and the message stays. */
    n = 99;
    CHECK(FAILS_WITH(ReadFile(server, buf, 1, &n, NULL), ERROR_INSUFFICIENT_BUFFER));
    CHECK(n == 0);
    CHECK(GetMailslotInfo(server, NULL, &next, &count, NULL) && next == 2 && count == 3);

    /* In order across writers; each read is one whole message. */
    CHECK(ReadFile(server, buf, sizeof buf, &n, NULL) && n == 2 && memcmp(buf, "ab", 2) == 0);
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    CHECK(ReadFile(server, buf, sizeof buf, &n, &ov) && n == 3 && memcmp(buf, "cde", 3) == 0);
    CHECK(ov.Internal == 0 && ov.InternalHigh == 3);
    CHECK(GetMailslotInfo(server, NULL, &next, &count, NULL) && next == 0 && count == 1);
    CHECK(ReadFile(server, buf, sizeof buf, &n, NULL) && n == 0);

    /* Empty with timeout 0: ERROR_SEM_TIMEOUT at once, 0 bytes. */
    n = 99;
    CHECK(FAILS_WITH(ReadFile(server, buf, 0, &n, NULL), ERROR_SEM_TIMEOUT));
    CHECK(n == 0);
    /* SetMailslotInfo: later reads wait that long. */
    CHECK(SetMailslotInfo(server, 100));
    CHECK(GetMailslotInfo(server, NULL, NULL, NULL, &timeout) && timeout == 100);
    DWORD t0 = GetTickCount();
    double m0 = now_ms();
    CHECK(FAILS_WITH(ReadFile(server, buf, sizeof buf, &n, NULL), ERROR_SEM_TIMEOUT));
    CHECK(now_ms() - m0 >= 95);
    CHECK(GetTickCount() - t0 >= 90);
    CHECK(SetMailslotInfo(server, MAILSLOT_WAIT_FOREVER));
    CHECK(GetMailslotInfo(server, NULL, NULL, NULL, &timeout) && timeout == MAILSLOT_WAIT_FOREVER);
    /* Milliseconds since boot, like /proc/uptime (CLOCK_BOOTTIME). */
    double uptime = 0;
    FILE *f = fopen("/proc/uptime", "r");
    CHECK(f && fscanf(f, "%lf", &uptime) == 1);
    if (f) fclose(f);
    ULONGLONG ticks = GetTickCount64();
    CHECK(ticks + 1000 > (ULONGLONG)(uptime * 1000) && ticks < (ULONGLONG)(uptime * 1000) + 1000);
    CHECK((DWORD)(GetTickCount() - (DWORD)ticks) < 1000);

    /* Overlapped writes complete at once too. */
    memset(&ov, 0, sizeof ov);
    CHECK(WriteFile(client, "ov", 2, &n, &ov) && ov.InternalHigh == 2);
    CHECK(ReadFile(server, buf, sizeof buf, NULL, &ov) && ov.InternalHigh == 2);

    /* A client opened without write access cannot write. */
    HANDLE noaccess = CreateFileA("\\\\.\\mailslot\\win32\\basics", 0, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    REQUIRE(noaccess != INVALID_HANDLE_VALUE);
    CHECK(FAILS_WITH(WriteFile(noaccess, "x", 1, &n, NULL), ERROR_ACCESS_DENIED));
    CHECK(CloseHandle(noaccess));

    /* The server closes: the name is free again, clients' writes fail. */
    CHECK(CloseHandle(server));
    CHECK(FAILS_WITH(CloseHandle(server), ERROR_INVALID_HANDLE));
    n = 99;
    CHECK(FAILS_WITH(ReadFile(server, buf, sizeof buf, &n, NULL), ERROR_INVALID_HANDLE));
    CHECK(n == 0);
    CHECK(FAILS_WITH(GetMailslotInfo(server, NULL, NULL, NULL, NULL), ERROR_INVALID_HANDLE));
    CHECK(FAILS_WITH(WriteFile(client, "late", 4, &n, NULL), ERROR_FILE_NOT_FOUND));
    server = CreateMailslotA("\\\\.\\mailslot\\win32\\basics", 0, 0, NULL);
    CHECK(server != INVALID_HANDLE_VALUE);
    /* The old handle value does not reach the new slot. */
    CHECK(CloseHandle(client));
    CHECK(CloseHandle(client2));
    CHECK(CloseHandle(server));
}

static void test_errors(void) {
    DWORD n = 0;
    char buf[8];
    SECURITY_ATTRIBUTES sa;
    memset(&sa, 0, sizeof sa);
    sa.nLength = sizeof sa;
    sa.bInheritHandle = TRUE;

    /* Names. */
    CHECK(CreateMailslotA(NULL, 0, 0, NULL) == INVALID_HANDLE_VALUE && GetLastError() == ERROR_PATH_NOT_FOUND);
    CHECK(CreateMailslotW(NULL, 0, 0, NULL) == INVALID_HANDLE_VALUE && GetLastError() == ERROR_PATH_NOT_FOUND);
    CHECK(CreateMailslotA("blah", 0, 0, NULL) == INVALID_HANDLE_VALUE && GetLastError() == ERROR_INVALID_NAME);
    CHECK(CreateMailslotA("\\\\.\\pipe\\x", 0, 0, &sa) == INVALID_HANDLE_VALUE && GetLastError() == ERROR_INVALID_NAME);
    CHECK(CreateMailslotA("\\\\HOST\\mailslot\\x", 0, 0, NULL) == INVALID_HANDLE_VALUE &&
          GetLastError() == ERROR_INVALID_NAME);
    CHECK(strstr(mailslot_last_error_message(), "CreateMailslotA") != NULL);
    CHECK(CreateMailslotA("\\\\*\\mailslot\\x", 0, 0, NULL) == INVALID_HANDLE_VALUE && GetLastError() == ERROR_INVALID_NAME);
    CHECK(CreateFileA(NULL, GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL) == INVALID_HANDLE_VALUE &&
          GetLastError() == ERROR_PATH_NOT_FOUND);
    CHECK(CreateFileA("/etc/passwd", GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL) == INVALID_HANDLE_VALUE &&
          GetLastError() == ERROR_INVALID_NAME);
    CHECK(strstr(mailslot_last_error_message(), "mailslot names only") != NULL);
    CHECK(CreateFileA("\\\\.\\mailslot\\win32\\missing", GENERIC_WRITE, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0,
                      NULL) == INVALID_HANDLE_VALUE &&
          GetLastError() == ERROR_FILE_NOT_FOUND);
    CHECK(strstr(mailslot_last_error_message(), "win32\\missing") != NULL);
    CHECK(CreateFileA("\\\\.\\mailslot\\x", GENERIC_WRITE, 0, NULL, 0, 0, NULL) == INVALID_HANDLE_VALUE &&
          GetLastError() == ERROR_INVALID_PARAMETER);

    /* Handles that are not handles. */
    CHECK(FAILS_WITH(CloseHandle(INVALID_HANDLE_VALUE), ERROR_INVALID_HANDLE));
    CHECK(FAILS_WITH(CloseHandle(NULL), ERROR_INVALID_HANDLE));
    CHECK(FAILS_WITH(CloseHandle((HANDLE)(uintptr_t)0x12345678), ERROR_INVALID_HANDLE));
    n = 99;
    CHECK(FAILS_WITH(ReadFile(INVALID_HANDLE_VALUE, buf, sizeof buf, &n, NULL), ERROR_INVALID_HANDLE));
    CHECK(n == 0);
    CHECK(FAILS_WITH(WriteFile(NULL, "x", 1, &n, NULL), ERROR_INVALID_HANDLE));
    CHECK(FAILS_WITH(GetMailslotInfo(INVALID_HANDLE_VALUE, NULL, NULL, NULL, NULL), ERROR_INVALID_HANDLE));
    CHECK(FAILS_WITH(SetMailslotInfo(INVALID_HANDLE_VALUE, 0), ERROR_INVALID_HANDLE));

    /* Buffers: NULL with a size is refused; over the slot's maximum too. */
    HANDLE s = CreateMailslotA("\\\\.\\mailslot\\win32\\errors", 8, 0, &sa);
    REQUIRE(s != INVALID_HANDLE_VALUE);
    HANDLE c = CreateFileA("\\\\.\\mailslot\\win32\\errors", GENERIC_WRITE, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    REQUIRE(c != INVALID_HANDLE_VALUE);
    DWORD max = 0;
    CHECK(GetMailslotInfo(s, &max, NULL, NULL, NULL) && max == 8);
    CHECK(FAILS_WITH(WriteFile(c, "123456789", 9, &n, NULL), ERROR_INVALID_PARAMETER));
    CHECK(FAILS_WITH(WriteFile(c, NULL, 3, &n, NULL), ERROR_INVALID_PARAMETER));
    CHECK(WriteFile(c, "12345678", 8, &n, NULL) && n == 8);
    CHECK(FAILS_WITH(ReadFile(s, NULL, 8, &n, NULL), ERROR_INVALID_PARAMETER));
    CHECK(ReadFile(s, buf, 8, &n, NULL) && n == 8);
    CHECK(CloseHandle(c));
    CHECK(CloseHandle(s));
    /* 0xFFFFFFFF is a valid maximum, reported back as given. */
    s = CreateMailslotA("\\\\.\\mailslot\\win32\\max", 0xFFFFFFFFu, 0, NULL);
    REQUIRE(s != INVALID_HANDLE_VALUE);
    CHECK(GetMailslotInfo(s, &max, NULL, NULL, NULL) && max == 0xFFFFFFFFu);
    CHECK(CloseHandle(s));

    /* A shared native reader holds the name: sharing violation. */
    mailslot_reader *shared = NULL;
    REQUIRE(mailslot_reader_create("win32\\shared", 0, 0, 0, MAILSLOT_SHARED, &shared) == MAILSLOT_OK);
    CHECK(CreateMailslotA("\\\\.\\mailslot\\win32\\shared", 0, 0, NULL) == INVALID_HANDLE_VALUE &&
          GetLastError() == ERROR_SHARING_VIOLATION);
    mailslot_reader_close(shared);
}

/* UTF-16 names (u"..."), the same slot through UTF-8 names, bad UTF-16. */
static void test_utf16(void) {
    HANDLE s = CreateMailslotW(u"\\\\.\\mailslot\\Grüße\\日本", 0, 0, NULL);
    REQUIRE(s != INVALID_HANDLE_VALUE);
    HANDLE c = CreateFileA("\\\\.\\MAILSLOT\\GRÜßE\\日本", GENERIC_WRITE, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    REQUIRE(c != INVALID_HANDLE_VALUE);
    HANDLE cw = CreateFileW(u"\\\\.\\mailslot\\grüße\\日本", GENERIC_WRITE, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    REQUIRE(cw != INVALID_HANDLE_VALUE);
    DWORD n = 0;
    char buf[32];
    CHECK(WriteFile(c, "utf8", 4, &n, NULL) && WriteFile(cw, "utf16", 5, &n, NULL));
    CHECK(ReadFile(s, buf, sizeof buf, &n, NULL) && n == 4 && memcmp(buf, "utf8", 4) == 0);
    CHECK(ReadFile(s, buf, sizeof buf, &n, NULL) && n == 5 && memcmp(buf, "utf16", 5) == 0);
    /* The native API sees the same name in UTF-8. */
    mailslot_writer *w = NULL;
    CHECK(mailslot_writer_open("\\\\.\\mailslot\\Grüße\\日本", &w) == MAILSLOT_OK);
    mailslot_writer_close(w);
    CHECK(CloseHandle(c) && CloseHandle(cw) && CloseHandle(s));

    /* An unpaired surrogate is not a name. */
    WCHAR bad[32];
    const WCHAR *prefix = u"\\\\.\\mailslot\\x";
    size_t i = 0;
    for (; prefix[i]; i++) bad[i] = prefix[i];
    bad[i++] = (WCHAR)0xD800;
    bad[i] = 0;
    CHECK(CreateMailslotW(bad, 0, 0, NULL) == INVALID_HANDLE_VALUE && GetLastError() == ERROR_INVALID_NAME);
    CHECK(CreateFileW(bad, GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL) == INVALID_HANDLE_VALUE &&
          GetLastError() == ERROR_INVALID_NAME);
    CHECK(strstr(mailslot_last_error_message(), "UTF-16") != NULL);
    CHECK(CreateMailslotA("\\\\.\\mailslot\\bad\xff", 0, 0, NULL) == INVALID_HANDLE_VALUE &&
          GetLastError() == ERROR_INVALID_NAME);
}

/* \\* writes: NetBIOS datagrams to the broadcast address, here a UDP peer
 * on 127.0.0.1; more than 424 bytes is ERROR_BAD_NETPATH, nothing sent. */
static void test_broadcast(void) {
    uint16_t port;
    int peer = udp_peer(&port);
    mailslot_net_options o;
    memset(&o, 0, sizeof o);
    o.host = "W32TEST";
    o.workgroup = "OFFICE";
    o.port = port;
    o.broadcast = "127.0.0.1";
    CHECK(mailslot_set_net_defaults(&o) == MAILSLOT_OK);

    HANDLE c = CreateFile(TEXT("\\\\*\\mailslot\\chat"), GENERIC_WRITE, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                          FILE_ATTRIBUTE_NORMAL, NULL);
    REQUIRE(c != INVALID_HANDLE_VALUE);
    DWORD n = 0;
    unsigned char d[1024];
    CHECK(WriteFile(c, "hello, everyone", 15, &n, NULL) && n == 15);
    long got = udp_receive(peer, d, sizeof d, 5000);
    CHECK(got > 15 && d[0] == 0x11); /* DIRECT_GROUP */
    CHECK(contains(d, got, "\\MAILSLOT\\chat"));
    CHECK(got > 15 && memcmp(d + got - 15, "hello, everyone", 15) == 0);
    char big[425];
    memset(big, 'z', sizeof big);
    CHECK(WriteFile(c, big, 424, &n, NULL) && n == 424);
    CHECK(udp_receive(peer, d, sizeof d, 5000) > 424);
    n = 99;
    CHECK(FAILS_WITH(WriteFile(c, big, 425, &n, NULL), ERROR_BAD_NETPATH));
    CHECK(n == 0);
    CHECK(udp_receive(peer, d, sizeof d, 200) == -1);
    /* Reads on a network client fail like on any client. */
    CHECK(FAILS_WITH(ReadFile(c, d, sizeof d, &n, NULL), ERROR_INVALID_PARAMETER));
    CHECK(CloseHandle(c));

    /* A \\DOMAIN equal to our workgroup is a group send too. */
    c = CreateFileA("\\\\office\\mailslot\\chat", GENERIC_WRITE, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    REQUIRE(c != INVALID_HANDLE_VALUE);
    CHECK(WriteFile(c, "office", 6, &n, NULL));
    got = udp_receive(peer, d, sizeof d, 5000);
    CHECK(got > 6 && d[0] == 0x11);
    CHECK(CloseHandle(c));
    CHECK(mailslot_set_net_defaults(NULL) == MAILSLOT_OK);
    close(peer);
}

struct blocked {
    HANDLE h;
    volatile long tid;
    BOOL ok;
    DWORD error;
};

static void *read_forever(void *arg) {
    struct blocked *b = (struct blocked *)arg;
    char buf[16];
    DWORD n;
    b->tid = (long)syscall(SYS_gettid);
    b->ok = ReadFile(b->h, buf, sizeof buf, &n, NULL);
    b->error = GetLastError();
    return NULL;
}

/* Whether thread `tid` of this process is asleep (state S). */
static int sleeping(long tid) {
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t k = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[k] = 0;
    const char *p = strrchr(stat, ')');
    return p && p[1] == ' ' && p[2] == 'S';
}

/* CloseHandle ends a ReadFile blocked forever on another thread. */
static void test_close_while_reading(void) {
    struct blocked b;
    pthread_t t;
    b.h = CreateMailslotA("\\\\.\\mailslot\\win32\\blocked", 0, MAILSLOT_WAIT_FOREVER, NULL);
    b.tid = 0;
    b.ok = TRUE;
    b.error = 0;
    REQUIRE(b.h != INVALID_HANDLE_VALUE);
    REQUIRE(pthread_create(&t, NULL, read_forever, &b) == 0);
    double deadline = now_ms() + 5000;
    while ((!b.tid || !sleeping(b.tid)) && now_ms() < deadline) sched_yield();
    CHECK(CloseHandle(b.h));
    pthread_join(t, NULL);
    CHECK(!b.ok && b.error == ERROR_OPERATION_ABORTED);
    /* The name is free once the read has let go of it. */
    HANDLE again = CreateMailslotA("\\\\.\\mailslot\\win32\\blocked", 0, 0, NULL);
    CHECK(again != INVALID_HANDLE_VALUE);
    CHECK(CloseHandle(again));
}

int main(void) {
    if (!getenv("MAILSLOT_DIR")) {
        fprintf(stderr, "set MAILSLOT_DIR to a private directory first\n");
        return 2;
    }
    test_constants();
    test_server_and_client();
    test_errors();
    test_utf16();
    test_broadcast();
    test_close_while_reading();
#ifdef UNICODE
    return test_summary("win32_test (UNICODE)");
#else
    return test_summary("win32_test (ANSI)");
#endif
}
