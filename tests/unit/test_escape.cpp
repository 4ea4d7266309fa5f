#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <random>

#include "core/escape.h"
#include "core/event.h"
#include "core/filter.h"
#include "core/format.h"

using namespace unlinkd;

TEST_CASE("names that are plain text are kept as they are", "[escape]")
{
    CHECK(escape_name("/home/u/a.txt") == "/home/u/a.txt");
    CHECK(escape_name("") == "");
    CHECK(escape_name("/tmp/caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "/tmp/caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}

TEST_CASE("bytes that are not UTF-8, controls and backslashes are escaped", "[escape]")
{
    CHECK(escape_name("\xff\xfe") == "\\xff\\xfe");
    CHECK(escape_name("y\nrm[1] uid=0 deleted /etc/forged") == "y\\x0arm[1] uid=0 deleted /etc/forged");
    CHECK(escape_name("a\\x41") == "a\\\\x41");
    CHECK(escape_name(std::string("\x01\x1f\x7f", 3)) == "\\x01\\x1f\\x7f");
    CHECK(escape_name("\xc3") == "\\xc3");                   // truncated sequence
    CHECK(escape_name("\xc0\xaf") == "\\xc0\\xaf");          // overlong '/'
    CHECK(escape_name("\xe0\x80\xaf") == "\\xe0\\x80\\xaf");  // overlong, 3 bytes
    CHECK(escape_name("\xed\xa0\x80") == "\\xed\\xa0\\x80");  // a surrogate
    CHECK(escape_name("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
    // Noncharacters are refused by sd-bus: escaped so D-Bus strings stay sendable.
    CHECK(escape_name("\xef\xbf\xbe") == "\\xef\\xbf\\xbe");  // U+FFFE
    CHECK(escape_name("\xef\xb7\x90") == "\\xef\\xb7\\x90");  // U+FDD0
    CHECK(escape_name("\xf0\x9f\xbf\xbf") == "\\xf0\\x9f\\xbf\\xbf");  // U+1FFFF
}

TEST_CASE("escaping is reversible and unescaping accepts only escape_name's own text", "[escape]")
{
    std::mt19937 rng(42);
    for (int i = 0; i < 20000; ++i) {
        std::string bytes(rng() % 24, '\0');
        for (auto& c : bytes)
            c = static_cast<char>(rng() % 4 == 0 ? "\\\n\xff\xc3\xe2\x82/a"[rng() % 8] : rng() & 0xff);
        auto text = escape_name(bytes);
        REQUIRE(unescape_name(text) == bytes);
        for (char c : text)
            REQUIRE((static_cast<unsigned char>(c) >= 0x20 && c != 0x7f));
    }
    CHECK_FALSE(unescape_name("\\x41").has_value());  // "A" is never escaped
    CHECK_FALSE(unescape_name("\\xFF").has_value());  // lowercase only
    CHECK_FALSE(unescape_name("\\").has_value());
    CHECK_FALSE(unescape_name("\\x4").has_value());
    CHECK_FALSE(unescape_name("\xff").has_value());
    CHECK(unescape_name("\\\\x41") == "\\x41");
}

TEST_CASE("no name breaks a line of output or the JSON", "[escape]")
{
    Event e;
    e.comm = "r\xffm\n";
    e.path = "/tmp/y\nrm[1] uid=0 deleted /etc/forged";
    e.path_as_given = "\xff\xfe";
    e.unit = "a\x1b[31m.service";
    auto message = journal_message(e);
    CHECK(message.find('\n') == std::string::npos);
    CHECK(message == "r\\xffm\\x0a[0] uid=0 deleted /tmp/y\\x0arm[1] uid=0 deleted /etc/forged");
    auto json = event_json(e).dump();  // throws on invalid UTF-8
    CHECK(json.find('\n') == std::string::npos);
    auto back = nlohmann::json::parse(json);
    CHECK(unescape_name(back["path_as_given"].get<std::string>()) == e.path_as_given);
    CHECK(back["unit"] == "a\\x1b[31m.service");
}

TEST_CASE("a caller's input in an error message: escaped, and cut when long", "[escape]")
{
    CHECK(shown_input("colour=red") == "colour=red");
    CHECK(shown_input("a\nb") == "a\\x0ab");
    CHECK(shown_input(std::string(1 << 20, 'a')) == std::string(256, 'a') + "... (1048576 bytes)");
    // The cut never splits a character: "é" is two bytes, the 256th byte starts one.
    std::string text = std::string(255, 'a') + "\xc3\xa9" + "zz";
    CHECK(shown_input(text) == std::string(255, 'a') + "... (259 bytes)");
    CHECK(shown_input("abcdef", 3) == "abc... (6 bytes)");
}

TEST_CASE("a bad filter rule of 1 MiB is named, not echoed whole", "[escape][filter]")
{
    auto r = parse_filter_rules({"comm=" + std::string(1 << 20, 'x')});
    REQUIRE_FALSE(r);
    CHECK(r.error().message.size() < 512);
    CHECK_THAT(r.error().message, Catch::Contains("(1048581 bytes)") && Catch::Contains("comm must be 1 to 15 bytes"));
}
