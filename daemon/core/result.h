// Result<T>: a value or an Error (errno plus a sentence for the user).
// Errors are made where the decision is taken and passed up unchanged, so the
// edge (CLI, D-Bus) can show the sentence and map the errno.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace unlinkd {

struct Error {
    int code = 0;  // positive errno, or 0 when no errno applies (EINVAL-like input errors use EINVAL)
    std::string message;
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error error) : v_(std::move(error)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    T& operator*() { return value(); }
    T* operator->() { return &value(); }
    const T& operator*() const { return value(); }
    const T* operator->() const { return &value(); }
    const Error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;

inline Status ok() { return Ok{}; }

}  // namespace unlinkd
