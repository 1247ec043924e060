/*
 * libmailslot: a stand-in <windows.h> for Windows mailslot code.
 *
 * Add -I$(pkg-config --variable=includedir mailslot)/mailslot/compat and a
 * file doing `#include <windows.h>` gets the Win32-compatible mailslot API
 * (mailslot/win32.h) and nothing else of Windows.
 */
#ifndef MAILSLOT_COMPAT_WINDOWS_H
#define MAILSLOT_COMPAT_WINDOWS_H

#include "../win32.h"

#endif /* MAILSLOT_COMPAT_WINDOWS_H */
