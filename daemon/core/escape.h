// Names are bytes (spec section 1a): a file name, comm or exe is any
// sequence of bytes a local user chose. Every text output (the journal's
// MESSAGE, --foreground lines, JSON, D-Bus strings, unlinkctl, metrics
// labels) shows them through escape_name(), so that every string is valid
// UTF-8 and no name can start a new line or forge one. Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace unlinkd {

// Each byte that is not part of a valid UTF-8 character, and each control
// character (below 0x20, and 0x7f), becomes \xNN (two lowercase hex digits);
// a backslash becomes \\. Everything else is kept as it is.
//
// "Valid" is what D-Bus accepts (sd-bus's check), one step stricter than
// UTF-8 itself: besides overlong forms, surrogates and code points above
// U+10FFFF, the Unicode noncharacters (U+FDD0..U+FDEF and U+xxFFFE/U+xxFFFF)
// are escaped byte by byte too, or a name holding one would fail a D-Bus
// method or signal.
std::string escape_name(std::string_view bytes);

// A caller's input quoted in an error message: escaped as above, and cut
// after `max_bytes` of it with the whole length said, so a 1 MiB argument
// is not echoed back whole (the message stays readable and small).
std::string shown_input(std::string_view bytes, std::size_t max_bytes = 256);

// The exact bytes back from escape_name()'s text; nothing when `text` is
// not something escape_name() could have written.
std::optional<std::string> unescape_name(std::string_view text);

}  // namespace unlinkd
