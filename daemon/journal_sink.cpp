#include "journal_sink.h"

#include <spdlog/spdlog.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <string>
#include <vector>

#include "core/journal_fields.h"

namespace unlinkd {

namespace {

// journald's socket. sd_journal_sendv() returns 0 when it does not exist (it
// drops the entry silently), so only its absence tells that case apart.
constexpr const char* journal_socket = "/run/systemd/journal/socket";

}  // namespace

void JournalSink::send(const std::vector<std::string>& fields)
{
    std::vector<iovec> iov;
    iov.reserve(fields.size());
    for (const auto& f : fields)
        iov.push_back(iovec{const_cast<char*>(f.data()), f.size()});
    int r = sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
    if (r == 0 && access(journal_socket, F_OK) != 0)
        r = -errno;
    if (r < 0) {
        if (!journal_away_)
            spdlog::warn("journald does not take entries ({}: {}); deletions are still counted, their journal "
                         "entries are lost until it is back",
                         journal_socket, strerrorname_np(-r));
        journal_away_ = true;
        ++lost_entries_;
        return;
    }
    if (journal_away_)
        spdlog::info("journald takes entries again; {} were lost while it was away", lost_entries_);
    journal_away_ = false;
    lost_entries_ = 0;
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

JournalSink::~JournalSink() { flush_not_logged(); }

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
        send(deletion_fields(e));
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
    std::uint64_t n = limit_.take_suppressed();
    if (unstreamed_total_) {
        std::uint64_t now = unstreamed_total_();
        n += now >= unstreamed_seen_ ? now - unstreamed_seen_ : now;  // the totals were reset
        unstreamed_seen_ = now;
    }
    // With max_journal_per_sec 0 nothing is logged by choice: no noise.
    if (n && limit_.rate())
        send(not_logged_fields(n, limit_.rate()));
    return n > 0;
}

}  // namespace unlinkd
