//! Sans-IO wire codec for remote mailslots (placeholder; see issue 3).
