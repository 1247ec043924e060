/*
 * libmailslot: the Win32-compatible mailslot API, for code written for
 * Windows. Build it unchanged with
 *
 *     cc app.c $(pkg-config --cflags --libs mailslot)
 *
 * after replacing `#include <windows.h>` with `#include <mailslot/win32.h>`,
 * or keeping `#include <windows.h>` and adding
 * `-I$(pkg-config --variable=includedir mailslot)/mailslot/compat`.
 *
 * Functions: CreateMailslotA/W, GetMailslotInfo, SetMailslotInfo,
 * CreateFileA/W (mailslot names only), ReadFile, WriteFile, CloseHandle,
 * GetLastError, SetLastError, GetTickCount, GetTickCount64; the macros
 * CreateMailslot, CreateFile and TEXT follow UNICODE.
 *
 * Names. The library exports prefixed symbols (mailslot_w32_ReadFile, ...)
 * and the Win32 names are macros, so nothing clashes with another library
 * the program links. Define MAILSLOT_W32_NO_MACROS before including this
 * header to get the prefixed names only.
 *
 * Strings. The ...A functions take UTF-8 (not a Windows code page). The
 * ...W functions take UTF-16: WCHAR is char16_t (16 bits, as on Windows).
 * On Linux L"..." is a 32-bit wchar_t string and does NOT fit LPCWSTR:
 * write u"..." or TEXT("...") (which is u"..." when UNICODE is defined).
 *
 * Behaviour (as on Windows):
 *  - CreateMailslot takes \\.\mailslot\NAME only (levels allowed, case
 *    ignored). A name that is not a mailslot path, or on another computer,
 *    fails with ERROR_INVALID_NAME; NULL with ERROR_PATH_NOT_FOUND; a name
 *    a live reader owns with ERROR_ALREADY_EXISTS. lReadTimeout is in ms,
 *    0 for none, MAILSLOT_WAIT_FOREVER to wait forever. The slot is
 *    writable by its owner and root (Windows' default security);
 *    SECURITY_ATTRIBUTES may be NULL and is ignored otherwise (handles are
 *    not inherited across exec).
 *  - CreateFile opens a writer ("client"): \\.\mailslot\NAME, or
 *    \\HOST\mailslot\NAME, \\DOMAIN\mailslot\NAME, \\*\mailslot\NAME
 *    (NetBIOS datagrams on UDP 138; see mailslot_set_net_defaults in
 *    mailslot.h). Other names fail with ERROR_INVALID_NAME; a local slot
 *    nobody created with ERROR_FILE_NOT_FOUND; a host that cannot be found
 *    with ERROR_BAD_NETPATH. Writing needs GENERIC_WRITE (or
 *    FILE_WRITE_DATA) in dwDesiredAccess; share mode, flags and the
 *    template are ignored.
 *  - ReadFile returns exactly one message. On a client handle it fails
 *    with ERROR_INVALID_PARAMETER; with a buffer smaller than the next
 *    message with ERROR_INSUFFICIENT_BUFFER, and the message stays queued
 *    (GetMailslotInfo tells its size); with nothing to read within the
 *    timeout with ERROR_SEM_TIMEOUT; on a closed or bogus handle with
 *    ERROR_INVALID_HANDLE. *lpNumberOfBytesRead is 0 on failure.
 *  - WriteFile sends one message. On a server handle it fails with
 *    ERROR_ACCESS_DENIED; to a network name, more than 424 bytes fail with
 *    ERROR_BAD_NETPATH before anything is sent; over the slot's maximum
 *    message size with ERROR_INVALID_PARAMETER; after the reader has gone
 *    with ERROR_FILE_NOT_FOUND.
 *  - GetMailslotInfo/SetMailslotInfo work on server handles (others:
 *    ERROR_INVALID_PARAMETER). Next size is MAILSLOT_NO_MESSAGE when the
 *    slot is empty, 0 for a zero-length message. Output pointers may be NULL.
 *  - OVERLAPPED may be NULL. If given, the operation still completes
 *    before the call returns; Internal is set to 0 and InternalHigh to the
 *    byte count; hEvent is not signalled.
 *  - Other failures: ERROR_SHARING_VIOLATION (a shared slot holds the
 *    name), ERROR_ACCESS_DENIED (the slot's mode refuses us),
 *    ERROR_FILENAME_EXCED_RANGE (name too long), ERROR_OPERATION_ABORTED
 *    (a blocked ReadFile whose handle another thread closed),
 *    ERROR_GEN_FAILURE (a system call failed). mailslot_last_error_message()
 *    (mailslot.h) gives the detail of the last failure on this thread.
 *
 * Thread-safety: every function may be called from any thread, on the
 * same handle too (concurrent ReadFile calls on one handle are served one
 * at a time). GetLastError/SetLastError are per thread. CloseHandle while
 * another thread is blocked in ReadFile on that handle makes that read
 * fail with ERROR_OPERATION_ABORTED.
 */
#ifndef MAILSLOT_WIN32_H
#define MAILSLOT_WIN32_H

#include "mailslot.h"

#include <stdint.h>
#ifndef __cplusplus
#include <uchar.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Types, with Windows' sizes ---- */

typedef uint32_t DWORD;
typedef int BOOL;
typedef uint8_t BYTE;
typedef uint16_t WORD;
typedef uint64_t ULONGLONG;
typedef uintptr_t ULONG_PTR;
typedef char CHAR;
typedef char16_t WCHAR;
typedef void *HANDLE;
typedef void *PVOID;
typedef void *LPVOID;
typedef const void *LPCVOID;
typedef DWORD *LPDWORD;
typedef BOOL *LPBOOL;
typedef CHAR *LPSTR;
typedef const CHAR *LPCSTR;
typedef WCHAR *LPWSTR;
typedef const WCHAR *LPCWSTR;

typedef struct _SECURITY_ATTRIBUTES {
    DWORD nLength;
    LPVOID lpSecurityDescriptor; /* ignored */
    BOOL bInheritHandle;         /* ignored */
} SECURITY_ATTRIBUTES, *PSECURITY_ATTRIBUTES, *LPSECURITY_ATTRIBUTES;

/* Windows' anonymous union and struct; __extension__ keeps g++ -Wpedantic quiet. */
#if defined(__GNUC__)
#define MAILSLOT_W32_EXTENSION_ __extension__
#else
#define MAILSLOT_W32_EXTENSION_
#endif

typedef struct _OVERLAPPED {
    ULONG_PTR Internal;     /* set to 0 when the operation completes */
    ULONG_PTR InternalHigh; /* set to the bytes transferred */
    MAILSLOT_W32_EXTENSION_ union {
        MAILSLOT_W32_EXTENSION_ struct {
            DWORD Offset;
            DWORD OffsetHigh;
        };
        PVOID Pointer;
    };
    HANDLE hEvent; /* not signalled */
} OVERLAPPED, *LPOVERLAPPED;

#ifdef UNICODE
typedef WCHAR TCHAR;
typedef LPCWSTR LPCTSTR;
typedef LPWSTR LPTSTR;
#define MAILSLOT_W32_TEXT_(s) u##s
#else
typedef CHAR TCHAR;
typedef LPCSTR LPCTSTR;
typedef LPSTR LPTSTR;
#define MAILSLOT_W32_TEXT_(s) s
#endif
#ifndef TEXT
#define TEXT(s) MAILSLOT_W32_TEXT_(s)
#endif
#ifndef _T
#define _T(s) MAILSLOT_W32_TEXT_(s)
#endif

/* ---- Constants ---- */

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif
#define INVALID_HANDLE_VALUE ((HANDLE)(intptr_t)-1)

/* MAILSLOT_WAIT_FOREVER and MAILSLOT_NO_MESSAGE (0xFFFFFFFF) come from mailslot.h. */

#define GENERIC_READ 0x80000000u
#define GENERIC_WRITE 0x40000000u
#define GENERIC_EXECUTE 0x20000000u
#define GENERIC_ALL 0x10000000u
#define FILE_READ_DATA 0x0001u
#define FILE_WRITE_DATA 0x0002u
#define FILE_APPEND_DATA 0x0004u
#define SYNCHRONIZE 0x00100000u
#define FILE_SHARE_READ 0x00000001u
#define FILE_SHARE_WRITE 0x00000002u
#define FILE_SHARE_DELETE 0x00000004u
#define CREATE_NEW 1u
#define CREATE_ALWAYS 2u
#define OPEN_EXISTING 3u
#define OPEN_ALWAYS 4u
#define TRUNCATE_EXISTING 5u
#define FILE_ATTRIBUTE_NORMAL 0x00000080u
#define FILE_FLAG_OVERLAPPED 0x40000000u

#define ERROR_SUCCESS 0u
#define NO_ERROR 0u
#define ERROR_FILE_NOT_FOUND 2u
#define ERROR_PATH_NOT_FOUND 3u
#define ERROR_TOO_MANY_OPEN_FILES 4u
#define ERROR_ACCESS_DENIED 5u
#define ERROR_INVALID_HANDLE 6u
#define ERROR_NOT_ENOUGH_MEMORY 8u
#define ERROR_GEN_FAILURE 31u
#define ERROR_SHARING_VIOLATION 32u
#define ERROR_BAD_NETPATH 53u
#define ERROR_INVALID_PARAMETER 87u
#define ERROR_SEM_TIMEOUT 121u
#define ERROR_INSUFFICIENT_BUFFER 122u
#define ERROR_INVALID_NAME 123u
#define ERROR_ALREADY_EXISTS 183u
#define ERROR_FILENAME_EXCED_RANGE 206u
#define ERROR_OPERATION_ABORTED 995u

/* ---- Functions (exported with the mailslot_w32_ prefix) ---- */

HANDLE mailslot_w32_CreateMailslotA(LPCSTR lpName, DWORD nMaxMessageSize, DWORD lReadTimeout,
                                    LPSECURITY_ATTRIBUTES lpSecurityAttributes);
HANDLE mailslot_w32_CreateMailslotW(LPCWSTR lpName, DWORD nMaxMessageSize, DWORD lReadTimeout,
                                    LPSECURITY_ATTRIBUTES lpSecurityAttributes);
BOOL mailslot_w32_GetMailslotInfo(HANDLE hMailslot, LPDWORD lpMaxMessageSize, LPDWORD lpNextSize,
                                  LPDWORD lpMessageCount, LPDWORD lpReadTimeout);
BOOL mailslot_w32_SetMailslotInfo(HANDLE hMailslot, DWORD lReadTimeout);
HANDLE mailslot_w32_CreateFileA(LPCSTR lpFileName, DWORD dwDesiredAccess, DWORD dwShareMode,
                                LPSECURITY_ATTRIBUTES lpSecurityAttributes,
                                DWORD dwCreationDisposition, DWORD dwFlagsAndAttributes,
                                HANDLE hTemplateFile);
HANDLE mailslot_w32_CreateFileW(LPCWSTR lpFileName, DWORD dwDesiredAccess, DWORD dwShareMode,
                                LPSECURITY_ATTRIBUTES lpSecurityAttributes,
                                DWORD dwCreationDisposition, DWORD dwFlagsAndAttributes,
                                HANDLE hTemplateFile);
BOOL mailslot_w32_ReadFile(HANDLE hFile, LPVOID lpBuffer, DWORD nNumberOfBytesToRead,
                           LPDWORD lpNumberOfBytesRead, LPOVERLAPPED lpOverlapped);
BOOL mailslot_w32_WriteFile(HANDLE hFile, LPCVOID lpBuffer, DWORD nNumberOfBytesToWrite,
                            LPDWORD lpNumberOfBytesWritten, LPOVERLAPPED lpOverlapped);
BOOL mailslot_w32_CloseHandle(HANDLE hObject);
DWORD mailslot_w32_GetLastError(void);
void mailslot_w32_SetLastError(DWORD dwErrCode);
DWORD mailslot_w32_GetTickCount(void);
ULONGLONG mailslot_w32_GetTickCount64(void);

#ifndef MAILSLOT_W32_NO_MACROS
#define CreateMailslotA mailslot_w32_CreateMailslotA
#define CreateMailslotW mailslot_w32_CreateMailslotW
#define GetMailslotInfo mailslot_w32_GetMailslotInfo
#define SetMailslotInfo mailslot_w32_SetMailslotInfo
#define CreateFileA mailslot_w32_CreateFileA
#define CreateFileW mailslot_w32_CreateFileW
#define ReadFile mailslot_w32_ReadFile
#define WriteFile mailslot_w32_WriteFile
#define CloseHandle mailslot_w32_CloseHandle
#define GetLastError mailslot_w32_GetLastError
#define SetLastError mailslot_w32_SetLastError
#define GetTickCount mailslot_w32_GetTickCount
#define GetTickCount64 mailslot_w32_GetTickCount64
#ifdef UNICODE
#define CreateMailslot CreateMailslotW
#define CreateFile CreateFileW
#else
#define CreateMailslot CreateMailslotA
#define CreateFile CreateFileA
#endif
#endif /* MAILSLOT_W32_NO_MACROS */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MAILSLOT_WIN32_H */
