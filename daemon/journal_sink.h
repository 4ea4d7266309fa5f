// Publishes deletions to the journal: one structured entry per deletion, at
// most max_per_second a second, and one entry per second saying how many were
// not logged beyond that (the counts in the kernel stay exact regardless).
// When journald is absent or stops, counting goes on; the log (stderr) says
// so once, and again when journald takes entries again.
//
// It never blocks the loop: entries go to journald's socket in its native
// protocol on a non-blocking socket of its own (sd_journal_sendv() blocks
// while journald's queue is full, which held up D-Bus replies for more than
// 25 s in a storm on a slow machine). While the socket is full, entries wait
// in a bounded backlog, written when it is writable again; past the bound
// they are dropped and reported in the next "not logged" entry.
#pragma once

#include <systemd/sd-event.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/aggregate.h"
#include "core/event.h"
#include "core/rate_limit.h"
#include "core/result.h"
#include "event_loop.h"

namespace unlinkd {

class JournalSink : public EventSink {
public:
    // `unstreamed_total`: deletions the kernel counted but did not stream
    // (its stream budget); they are reported as not logged as well.
    static Result<std::unique_ptr<JournalSink>> make(sd_event* loop, std::uint64_t max_per_second,
                                                     std::function<std::uint64_t()> unstreamed_total);
    ~JournalSink() override;
    JournalSink(const JournalSink&) = delete;
    JournalSink& operator=(const JournalSink&) = delete;

    void on_event(const Event& e) override;
    void set_rate(std::uint64_t max_per_second) { limit_.set_rate(max_per_second); }
    // Writes the periodic summary entry (journal_fields.h).
    void send_summary(const Totals& now, const Totals& before, const std::vector<ProcessStats>& top,
                             std::uint64_t interval_sec, std::string_view mode);

private:
    JournalSink(sd_event* loop, std::uint64_t max_per_second, std::function<std::uint64_t()> unstreamed_total);
    static int on_timer(sd_event_source* source, std::uint64_t usec, void* self);
    // Writes the "N not logged" entry if any were; says whether.
    bool flush_not_logged();
    // One entry to journald; notes when it stops or starts taking them.
    // yes: written or in the backlog; dropped: the backlog is full (the
    // caller counts what that loses); away: journald is not there (counted
    // for the "back" message).
    enum class Sent { yes, dropped, away };
    Sent send(const std::vector<std::string>& fields);
    // Writes one datagram: 0, or -errno (-EAGAIN: journald's queue is full).
    int write_entry(const std::string& entry);
    // (Re)opens the socket to journald; -errno if it cannot.
    int connect_journal();
    void disconnect();
    void journal_is_away(int error);
    void journal_is_back();
    // Writes the backlog while the socket takes it; on EPOLLOUT.
    static int on_writable(sd_event_source* source, int fd, std::uint32_t revents, void* self);
    void write_backlog();
    sd_event* loop_;
    int fd_ = -1;
    EventSource writable_;                // EPOLLOUT on fd_, enabled while the backlog is not empty
    std::deque<std::string> backlog_;
    std::size_t backlog_bytes_ = 0;
    std::uint64_t busy_dropped_ = 0;      // deletions' entries dropped, backlog full: in the next "not logged" entry
    std::uint64_t carried_ = 0;           // deletions of a "not logged" entry that was dropped itself
    RateLimiter limit_;
    std::function<std::uint64_t()> unstreamed_total_;
    std::uint64_t unstreamed_seen_ = 0;
    EventSource timer_;
    bool journal_away_ = false;    // said so; says again when it is back
    std::uint64_t lost_entries_ = 0;  // while it was away
};

}  // namespace unlinkd
