#include "journal_sink.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <string>
#include <vector>

#include "core/journal_fields.h"

namespace unlinkd {

namespace {

// journald's socket (native protocol).
constexpr const char* journal_socket = "/run/systemd/journal/socket";
// How much waits for journald while its socket is full: a few seconds of
// the default 200 entries a second; beyond it, entries are dropped (and
// reported as not logged) rather than kept without bound.
constexpr std::size_t backlog_max_entries = 1024;
constexpr std::size_t backlog_max_bytes = 4u << 20;

}  // namespace

void JournalSink::disconnect()
{
    writable_ = EventSource();
    if (fd_ >= 0)
        close(fd_);
    fd_ = -1;
}

int JournalSink::connect_journal()
{
    disconnect();
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0)
        return -errno;
    // Datagrams in flight count against the sender's buffer: as sd-journal
    // does, ask for a large one (capped by net.core.wmem_max).
    int sndbuf = 8 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, journal_socket, sizeof(addr.sun_path) - 1);
    // Connected, so that EPOLLOUT means journald's queue has room again.
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
        int e = errno;
        disconnect();
        return -e;
    }
    auto io = add_io(loop_, "journal-writable", fd_, EPOLLOUT, &JournalSink::on_writable, this);
    if (!io) {
        disconnect();
        return -EIO;
    }
    writable_ = std::move(*io);
    writable_.enable(backlog_.empty() ? SD_EVENT_OFF : SD_EVENT_ON);
    return 0;
}

int JournalSink::write_entry(const std::string& entry)
{
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (fd_ < 0) {
            if (int r = connect_journal(); r < 0)
                return r;
        }
        if (::send(fd_, entry.data(), entry.size(), MSG_NOSIGNAL) >= 0)
            return 0;
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return -EAGAIN;
        if (e == EMSGSIZE)
            return -EMSGSIZE;  // larger than a datagram may be: not with our fields' sizes
        // journald restarted (ECONNREFUSED on the old socket) or went away:
        // reconnect once.
        disconnect();
        if (attempt == 1)
            return -e;
    }
    return -EIO;
}

void JournalSink::journal_is_away(int error)
{
    if (!journal_away_)
        spdlog::warn("journald does not take entries ({}: {}); deletions are still counted, their journal "
                     "entries are lost until it is back",
                     journal_socket, strerrorname_np(-error));
    journal_away_ = true;
    ++lost_entries_;
}

void JournalSink::journal_is_back()
{
    if (journal_away_)
        spdlog::info("journald takes entries again; {} were lost while it was away", lost_entries_);
    journal_away_ = false;
    lost_entries_ = 0;
}

JournalSink::Sent JournalSink::send(const std::vector<std::string>& fields)
{
    std::string entry = journal_native_entry(fields);
    // Behind a backlog: in order, after it.
    int r = backlog_.empty() ? write_entry(entry) : -EAGAIN;
    if (r == 0) {
        journal_is_back();
        return Sent::yes;
    }
    if (r != -EAGAIN && r != -EMSGSIZE) {
        journal_is_away(r);
        return Sent::away;
    }
    if (r == -EMSGSIZE || backlog_.size() >= backlog_max_entries ||
        backlog_bytes_ + entry.size() > backlog_max_bytes)
        return Sent::dropped;
    backlog_bytes_ += entry.size();
    backlog_.push_back(std::move(entry));
    writable_.enable(SD_EVENT_ON);
    return Sent::yes;
}

int JournalSink::on_writable(sd_event_source*, int, std::uint32_t, void* self)
{
    static_cast<JournalSink*>(self)->write_backlog();
    return 0;
}

void JournalSink::write_backlog()
{
    while (!backlog_.empty()) {
        int r = write_entry(backlog_.front());
        if (r == -EAGAIN)
            return;  // still full: EPOLLOUT again later
        if (r < 0)
            journal_is_away(r);
        else
            journal_is_back();
        backlog_bytes_ -= backlog_.front().size();
        backlog_.pop_front();
    }
    if (writable_)
        writable_.enable(SD_EVENT_OFF);
}

Result<std::unique_ptr<JournalSink>> JournalSink::make(sd_event* loop, std::uint64_t max_per_second,
                                                       std::function<std::uint64_t()> unstreamed_total)
{
    std::unique_ptr<JournalSink> sink(new JournalSink(loop, max_per_second, std::move(unstreamed_total)));
    auto timer = add_timer(loop, "journal-not-logged", 1'000'000, &JournalSink::on_timer, sink.get());
    if (!timer)
        return timer.error();
    sink->timer_ = std::move(*timer);
    return sink;
}

JournalSink::JournalSink(sd_event* loop, std::uint64_t max_per_second,
                         std::function<std::uint64_t()> unstreamed_total)
    : loop_(loop), limit_(max_per_second), unstreamed_total_(std::move(unstreamed_total))
{
    unstreamed_seen_ = unstreamed_total_ ? unstreamed_total_() : 0;
}

JournalSink::~JournalSink()
{
    flush_not_logged();
    // At exit the loop is gone: give what waits (the summary written at
    // stop among it) up to two seconds to get into the journal.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    for (write_backlog(); !backlog_.empty() && fd_ >= 0; write_backlog()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd_, POLLOUT, 0};
        if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0)
            break;
    }
    disconnect();
}

// Every second while deletions are refused; nothing refused in the last
// second: it sleeps until the next event.
int JournalSink::on_timer(sd_event_source*, std::uint64_t, void* self)
{
    auto* sink = static_cast<JournalSink*>(self);
    if (sink->flush_not_logged())
        sink->timer_.fire_in(1'000'000);
    return 0;
}

void JournalSink::on_event(const Event& e)
{
    if (limit_.allow(loop_now(loop_)))
        if (send(deletion_fields(e)) == Sent::dropped)
            ++busy_dropped_;  // reported by the timer, which this event arms
    if (!timer_.enabled())
        timer_.fire_in(1'000'000);
}

void JournalSink::send_summary(const Totals& now, const Totals& before, const std::vector<ProcessStats>& top,
                               std::uint64_t interval_sec, std::string_view mode)
{
    send(summary_fields(now, before, top, interval_sec, mode));
}

bool JournalSink::flush_not_logged()
{
    std::uint64_t busy = busy_dropped_;
    busy_dropped_ = 0;
    std::uint64_t n = limit_.take_suppressed() + busy + carried_;
    carried_ = 0;
    if (unstreamed_total_) {
        std::uint64_t now = unstreamed_total_();
        n += now >= unstreamed_seen_ ? now - unstreamed_seen_ : now;  // the totals were reset
        unstreamed_seen_ = now;
    }
    // With max_journal_per_sec 0 nothing is logged by choice: no noise.
    // If this entry cannot be written either, its deletions go into the
    // next one (journald's share as such).
    if (n && limit_.rate() && send(not_logged_fields(n, limit_.rate(), busy)) == Sent::dropped) {
        busy_dropped_ += busy;
        carried_ += n - busy;
    }
    return n > 0;
}

}  // namespace unlinkd
