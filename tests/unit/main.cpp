// Catch2's implementation (std::regex inside) trips GCC 12's
// -Wmaybe-uninitialized under -fsanitize=address,undefined: a false
// positive in library code, silenced for this include only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#pragma GCC diagnostic pop
