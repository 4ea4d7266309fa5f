// unlinkd-monitor: a GTK 4 window on unlinkd's D-Bus API, and nothing else.
//
//   unlinkd-monitor [--bus-address=ADDR] [--rows=N] [--top=N]
//                   [--dump-state=FILE] [--screenshot=FILE.png] [--after=SECONDS]
//                   [--apply-filter=RULE]...
//
// The D-Bus client is GIO's (giomm's Gio::DBus), not sdbus-c++ as in
// unlinkctl: GIO's connection already runs in the GLib main loop GTK runs,
// every call is asynchronous with a reply slot (the UI never waits for the
// daemon), the message flag ALLOW_INTERACTIVE_AUTHORIZATION is a call flag,
// and watching the name's owner (appear/vanish) is one call. sdbus-c++ 1.2
// would need its fd bridged into GLib by hand, and its generated proxy's
// methods are blocking. The contract still comes from the interface XML
// at build time: gdbus-codegen turns it into GDBusInterfaceInfo, from which
// every reply type and signal signature is checked, so a change in the XML
// that this client does not follow fails loudly instead of misreading.
#include <gio/gio.h>
#include <glib-unix.h>
#include <gtkmm.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/bus_names.h"
#include "model.h"
#include "unlinkd1-interface-info.h"

namespace {

constexpr const char* bus_name = unlinkd::bus::name;
using unlinkd::bus::object_path;
using unlinkd::bus::subscription_path;
constexpr const char* iface = unlinkd::bus::interface_name;
constexpr const char* props_iface = "org.freedesktop.DBus.Properties";

// The UI takes queued signals at this period: a storm of signals costs a
// queue push each, the widgets two list operations per tick.
constexpr unsigned flush_ms = 200;
// Totals have no change signal (they change with every deletion): polled.
constexpr unsigned refresh_ms = 1000;
// GetTopProcesses every this many refreshes, besides the Summary merges:
// it brings back what a Reset or the daemon's eviction changed.
constexpr unsigned top_every = 5;

struct Options {
    std::optional<std::string> bus_address, dump_state, screenshot;
    double after = -1;
    std::size_t rows = 500, top = 20;
    // Typed into the filter editor and applied when the daemon is first
    // seen, as a person would: scripts and the test drive the editor so.
    std::vector<std::string> apply_filters;
    bool apply_filters_given = false;
};

const char* usage =
    "Usage: unlinkd-monitor [--bus-address=ADDR] [--rows=N] [--top=N]\n"
    "                       [--dump-state=FILE] [--screenshot=FILE.png] [--after=SECONDS]\n"
    "                       [--apply-filter=RULE]...\n";

bool parse_count(const std::string& v, std::size_t& out)
{
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end || errno || n == 0 || n > 100000 || v[0] == '-')
        return false;
    out = static_cast<std::size_t>(n);
    return true;
}

std::optional<Options> parse_args(int argc, char** argv)
{
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&](const char* key) -> std::optional<std::string> {
            std::string k = std::string(key) + "=";
            if (a.rfind(k, 0) == 0)
                return a.substr(k.size());
            return std::nullopt;
        };
        if (a == "--help" || a == "-h") {
            std::cout << usage;
            std::exit(0);
        } else if (auto v = value("--bus-address")) {
            o.bus_address = *v;
        } else if (auto v = value("--dump-state")) {
            o.dump_state = *v;
        } else if (auto v = value("--screenshot")) {
            o.screenshot = *v;
        } else if (auto v = value("--after")) {
            char* end = nullptr;
            o.after = std::strtod(v->c_str(), &end);
            if (v->empty() || *end || !(o.after >= 0) || o.after > 86400) {
                std::cerr << "unlinkd-monitor: --after needs seconds (0 to 86400)\n";
                return std::nullopt;
            }
        } else if (auto v = value("--apply-filter")) {
            o.apply_filters.push_back(*v);
            o.apply_filters_given = true;
        } else if (auto v = value("--rows")) {
            if (!parse_count(*v, o.rows)) {
                std::cerr << "unlinkd-monitor: --rows needs a count from 1 to 100000\n";
                return std::nullopt;
            }
        } else if (auto v = value("--top")) {
            if (!parse_count(*v, o.top)) {
                std::cerr << "unlinkd-monitor: --top needs a count from 1 to 100000\n";
                return std::nullopt;
            }
        } else {
            std::cerr << "unlinkd-monitor: unknown argument " << a << "\n" << usage;
            return std::nullopt;
        }
    }
    if (o.screenshot && o.after < 0) {
        std::cerr << "unlinkd-monitor: --screenshot needs --after=SECONDS\n";
        return std::nullopt;
    }
    return o;
}

// ---- the contract, from the XML (gdbus-codegen's interface info)

std::string args_type(GDBusArgInfo* const* args)
{
    std::string t = "(";
    for (; args && *args; ++args)
        t += (*args)->signature;
    return t + ")";
}
const GDBusInterfaceInfo* info() { return &org_unlinkd_unlinkd1_interface; }
std::string reply_type(const char* method)
{
    auto* m = g_dbus_interface_info_lookup_method(const_cast<GDBusInterfaceInfo*>(info()), method);
    if (!m)
        g_error("the interface XML has no method %s", method);
    return args_type(m->out_args);
}
std::string signal_type(const char* signal)
{
    auto* s = g_dbus_interface_info_lookup_signal(const_cast<GDBusInterfaceInfo*>(info()), signal);
    if (!s)
        g_error("the interface XML has no signal %s", signal);
    return args_type(s->args);
}

// ---- decoding (the C API: the record layouts are fixed by the types checked above)

std::string take_string(GVariant* v)
{
    std::string s = g_variant_get_string(v, nullptr);
    g_variant_unref(v);
    return s;
}

monitor::ProcessRow process_of(GVariant* rec)   // (uuusttts)
{
    monitor::ProcessRow p;
    const char *comm = nullptr, *unit = nullptr;
    guint64 deletes = 0, failures = 0, last = 0;
    g_variant_get(rec, "(uuu&sttt&s)", &p.pid, &p.uid, &p.loginuid, &comm, &deletes, &failures, &last, &unit);
    p.comm = comm;
    p.unit = unit;
    p.deletes = deletes;
    p.failures = failures;
    p.last_usec = last;
    return p;
}

std::vector<monitor::ProcessRow> processes_of(GVariant* array)   // a(uuusttts)
{
    std::vector<monitor::ProcessRow> out;
    GVariantIter it;
    g_variant_iter_init(&it, array);
    while (GVariant* rec = g_variant_iter_next_value(&it)) {
        out.push_back(process_of(rec));
        g_variant_unref(rec);
    }
    return out;
}

monitor::EventRow event_of(GVariant* rec)   // (tuuusssiss)
{
    monitor::EventRow e;
    const char *comm, *exe, *path, *unit, *op;
    guint64 t = 0;
    g_variant_get(rec, "(tuuu&s&s&si&s&s)", &t, &e.pid, &e.uid, &e.loginuid, &comm, &exe, &path, &e.result, &unit, &op);
    e.time_usec = t;
    e.comm = comm;
    e.exe = exe;
    e.path = path;
    e.unit = unit;
    e.op = op;
    return e;
}

// "org.freedesktop.DBus.Error.AccessDenied: only root may ..." from a call's error.
std::string error_text(const Glib::Error& err)
{
    const GError* g = err.gobj();
    if (!g)
        return err.what();
    gchar* remote = g_dbus_error_get_remote_error(g);
    std::string msg = g->message ? g->message : "";
    if (remote) {
        GError* copy = g_error_copy(g);
        g_dbus_error_strip_remote_error(copy);
        msg = std::string(remote) + ": " + copy->message;
        g_error_free(copy);
        g_free(remote);
    }
    return msg;
}

// ---- list rows for Gtk::ColumnView: one object per row, its cells as text

class Row : public Glib::Object {
public:
    std::vector<Glib::ustring> cells;
    static Glib::RefPtr<Row> create(std::vector<Glib::ustring> c)
    {
        return Glib::make_refptr_for_instance<Row>(new Row(std::move(c)));
    }

protected:
    explicit Row(std::vector<Glib::ustring> c) : cells(std::move(c)) {}
};

struct Column {
    const char* title;
    bool expand;
    bool numeric;
};

Gtk::ColumnView* make_table(const Glib::RefPtr<Gio::ListStore<Row>>& store, const std::vector<Column>& cols)
{
    auto* view = Gtk::make_managed<Gtk::ColumnView>(Gtk::NoSelection::create(store));
    view->set_show_column_separators(true);
    view->set_reorderable(false);
    for (std::size_t i = 0; i < cols.size(); ++i) {
        auto factory = Gtk::SignalListItemFactory::create();
        const bool numeric = cols[i].numeric;
        factory->signal_setup().connect([numeric](const Glib::RefPtr<Gtk::ListItem>& item) {
            auto* label = Gtk::make_managed<Gtk::Label>();
            label->set_xalign(numeric ? 1.0f : 0.0f);
            label->set_ellipsize(Pango::EllipsizeMode::MIDDLE);
            item->set_child(*label);
        });
        factory->signal_bind().connect([i](const Glib::RefPtr<Gtk::ListItem>& item) {
            auto row = std::dynamic_pointer_cast<Row>(item->get_item());
            auto* label = dynamic_cast<Gtk::Label*>(item->get_child());
            if (row && label)
                label->set_text(i < row->cells.size() ? row->cells[i] : Glib::ustring());
        });
        auto column = Gtk::ColumnViewColumn::create(cols[i].title, factory);
        column->set_expand(cols[i].expand);
        column->set_resizable(true);
        view->append_column(column);
    }
    return view;
}

std::vector<Glib::ustring> cells_of(const monitor::EventRow& e)
{
    return {monitor::format_time(e.time_usec), e.comm, std::to_string(e.pid), std::to_string(e.uid), e.path,
            monitor::format_result(e.result), e.op};
}
std::vector<Glib::ustring> cells_of(const monitor::ProcessRow& p)
{
    return {p.comm,
            std::to_string(p.pid),
            std::to_string(p.uid),
            monitor::format_id(p.loginuid),
            p.unit.empty() ? "-" : p.unit,
            std::to_string(p.deletes),
            std::to_string(p.failures)};
}

// ---- the window and the client

class MonitorWindow : public Gtk::ApplicationWindow {
public:
    MonitorWindow(const Options& opt, Glib::RefPtr<Gtk::Application> app);
    ~MonitorWindow() override;

    void write_dump();
    bool take_screenshot();

private:
    // D-Bus
    void connect_bus();
    void on_connected(const Glib::RefPtr<Gio::AsyncResult>& res);
    void on_bus_closed(bool remote_peer_vanished, const Glib::Error& error);
    void on_appeared(const Glib::ustring& owner);
    void on_vanished();
    void on_signal(const Glib::RefPtr<Gio::DBus::Connection>&, const Glib::ustring& sender,
                   const Glib::ustring& path, const Glib::ustring& interface, const Glib::ustring& member,
                   const Glib::VariantContainerBase& params);
    using Reply = std::function<void(GVariant* body)>;
    using Failure = std::function<void(const std::string& error)>;
    void call(const char* method, GVariant* args, const char* iface_name, const std::string& reply,
              Reply on_reply, Failure on_error, Gio::DBus::CallFlags flags = Gio::DBus::CallFlags::NO_AUTO_START,
              int timeout_ms = -1);
    void fetch_properties();
    void fetch_top();
    void apply_properties(GVariant* dict);   // a{sv}
    bool on_refresh();

    // UI
    bool on_flush();
    void update_header();
    void on_apply();
    void on_revert();
    void set_filter_text(const std::vector<std::string>& rules);

    Options opt_;
    Glib::RefPtr<Gtk::Application> app_;
    monitor::Model model_;

    Glib::RefPtr<Gio::DBus::Connection> bus_;
    guint watch_id_ = 0;
    std::vector<guint> signal_ids_;
    std::string owner_;
    // Replies to calls made for an earlier owner (or connection) are
    // dropped: each appearance of the daemon starts a new epoch.
    unsigned epoch_ = 0;
    bool loading_events_ = false;                 // GetRecentEvents in flight
    std::vector<monitor::EventRow> early_events_; // signals that arrived meanwhile
    bool props_in_flight_ = false, top_in_flight_ = false, apply_in_flight_ = false;
    unsigned refresh_count_ = 0;
    bool header_dirty_ = true, processes_dirty_ = true;
    bool filters_edited_ = false;

    Gtk::Box root_{Gtk::Orientation::VERTICAL};
    Gtk::Label banner_;
    Gtk::Label mode_label_, deletes_label_, failures_label_, lost_label_, suppressed_label_;
    Glib::RefPtr<Gio::ListStore<Row>> proc_store_ = Gio::ListStore<Row>::create();
    Glib::RefPtr<Gio::ListStore<Row>> event_store_ = Gio::ListStore<Row>::create();
    Gtk::Label events_title_;
    Gtk::TextView filter_view_;
    Gtk::Label filter_status_;
    Gtk::Button apply_button_{"Apply"}, revert_button_{"Revert"};
    sigc::connection flush_timer_, refresh_timer_, retry_timer_;
};

MonitorWindow::MonitorWindow(const Options& opt, Glib::RefPtr<Gtk::Application> app)
    : opt_(opt), app_(std::move(app)), model_(opt.rows, opt.top)
{
    set_title("unlinkd monitor");
    set_icon_name("unlinkd-monitor");
    set_default_size(1100, 720);

    auto css = Gtk::CssProvider::create();
    css->load_from_data(
        ".banner { padding: 10px; font-weight: bold; font-size: 14pt; }"
        ".banner-down { background-color: #b3261e; color: white; }"
        ".banner-up { background-color: #2e7d32; color: white; }"
        ".banner-wait { background-color: #616161; color: white; }"
        ".total { font-size: 16pt; font-weight: bold; }"
        ".error { color: #b3261e; }"
        ".ok { color: #2e7d32; }");
    Gtk::StyleContext::add_provider_for_display(Gdk::Display::get_default(), css,
                                                GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);

    banner_.add_css_class("banner");
    banner_.set_xalign(0);
    banner_.set_wrap(true);
    root_.append(banner_);

    // The header: the attach mode and the totals.
    auto* header = Gtk::make_managed<Gtk::Box>(Gtk::Orientation::HORIZONTAL, 24);
    header->set_margin(10);
    auto total = [&](const char* title, Gtk::Label& value) {
        auto* box = Gtk::make_managed<Gtk::Box>(Gtk::Orientation::VERTICAL, 2);
        auto* t = Gtk::make_managed<Gtk::Label>(title);
        t->set_xalign(0);
        t->add_css_class("dim-label");
        value.set_xalign(0);
        value.add_css_class("total");
        box->append(*t);
        box->append(value);
        header->append(*box);
    };
    total("Attach mode", mode_label_);
    total("Deletions", deletes_label_);
    total("Failures", failures_label_);
    total("Lost events", lost_label_);
    total("Signals suppressed", suppressed_label_);
    root_.append(*header);

    auto* paned = Gtk::make_managed<Gtk::Paned>(Gtk::Orientation::HORIZONTAL);
    paned->set_vexpand(true);
    paned->set_wide_handle(true);

    auto* left = Gtk::make_managed<Gtk::Paned>(Gtk::Orientation::VERTICAL);
    auto framed = [](const Glib::ustring& title, Gtk::Widget& child, Gtk::Label* title_label) {
        auto* box = Gtk::make_managed<Gtk::Box>(Gtk::Orientation::VERTICAL, 4);
        box->set_margin(6);
        auto* label = title_label ? title_label : Gtk::make_managed<Gtk::Label>();
        label->set_markup("<b>" + Glib::Markup::escape_text(title) + "</b>");
        label->set_xalign(0);
        box->append(*label);
        auto* scroll = Gtk::make_managed<Gtk::ScrolledWindow>();
        scroll->set_child(child);
        scroll->set_vexpand(true);
        scroll->set_has_frame(true);
        box->append(*scroll);
        return box;
    };
    auto* procs = make_table(proc_store_, {{"Command", true, false},
                                           {"PID", false, true},
                                           {"UID", false, true},
                                           {"Login UID", false, true},
                                           {"Unit", true, false},
                                           {"Deletes", false, true},
                                           {"Failures", false, true}});
    auto* events = make_table(event_store_, {{"Time", false, false},
                                             {"Command", false, false},
                                             {"PID", false, true},
                                             {"UID", false, true},
                                             {"Path", true, false},
                                             {"Result", false, false},
                                             {"Op", false, false}});
    auto* top_box = framed("Top processes", *procs, nullptr);
    top_box->set_size_request(-1, 200);
    left->set_start_child(*top_box);
    left->set_end_child(*framed("Live deletions (newest first)", *events, &events_title_));
    left->set_position(250);
    paned->set_start_child(*left);
    paned->set_resize_start_child(true);

    // The filter editor: one rule per line, FIELD=VALUE or FIELD!=VALUE.
    auto* fbox = Gtk::make_managed<Gtk::Box>(Gtk::Orientation::VERTICAL, 6);
    fbox->set_margin(6);
    fbox->set_size_request(300, -1);
    auto* ftitle = Gtk::make_managed<Gtk::Label>();
    ftitle->set_markup("<b>Filters</b>");
    ftitle->set_xalign(0);
    fbox->append(*ftitle);
    auto* fhelp = Gtk::make_managed<Gtk::Label>(
        "One rule a line: FIELD=VALUE includes,\nFIELD!=VALUE excludes. Fields: pid, uid,\nloginuid, op, comm, path, unit. No rules:\n"
        "every deletion counts. Applying may ask\nfor an administrator's authorization.");
    // Fixed lines, not wrapping: a wrapping label in a Gtk::Paned makes
    // GTK 4.8 warn about its height-for-width.
    fhelp->set_xalign(0);
    fhelp->add_css_class("dim-label");
    fbox->append(*fhelp);
    filter_view_.set_monospace(true);
    filter_view_.get_buffer()->signal_changed().connect([this] { filters_edited_ = true; });
    auto* fscroll = Gtk::make_managed<Gtk::ScrolledWindow>();
    fscroll->set_child(filter_view_);
    fscroll->set_vexpand(true);
    fscroll->set_has_frame(true);
    fbox->append(*fscroll);
    auto* buttons = Gtk::make_managed<Gtk::Box>(Gtk::Orientation::HORIZONTAL, 6);
    buttons->set_halign(Gtk::Align::END);
    buttons->append(revert_button_);
    buttons->append(apply_button_);
    apply_button_.add_css_class("suggested-action");
    apply_button_.signal_clicked().connect(sigc::mem_fun(*this, &MonitorWindow::on_apply));
    revert_button_.signal_clicked().connect(sigc::mem_fun(*this, &MonitorWindow::on_revert));
    fbox->append(*buttons);
    paned->set_end_child(*fbox);
    paned->set_resize_end_child(false);
    paned->set_shrink_end_child(false);
    root_.append(*paned);
    // The outcome of Apply (the daemon's error text in full) under the
    // panes, the window's width: a wrapping label inside a Gtk::Paned
    // breaks GTK 4.8's height-for-width.
    filter_status_.set_wrap(true);
    filter_status_.set_wrap_mode(Pango::WrapMode::WORD_CHAR);
    filter_status_.set_xalign(0);
    filter_status_.set_selectable(true);
    filter_status_.set_margin(6);
    filter_status_.set_visible(false);
    root_.append(filter_status_);
    set_child(root_);

    update_header();
    flush_timer_ = Glib::signal_timeout().connect(sigc::mem_fun(*this, &MonitorWindow::on_flush), flush_ms);
    refresh_timer_ = Glib::signal_timeout().connect(sigc::mem_fun(*this, &MonitorWindow::on_refresh), refresh_ms);
    connect_bus();
}

MonitorWindow::~MonitorWindow()
{
    flush_timer_.disconnect();
    refresh_timer_.disconnect();
    retry_timer_.disconnect();
    if (watch_id_)
        Gio::DBus::unwatch_name(watch_id_);
    if (bus_)
        for (auto id : signal_ids_)
            bus_->signal_unsubscribe(id);
}

void MonitorWindow::connect_bus()
{
    model_.state = monitor::DaemonState::connecting;
    model_.message = "connecting to the system bus";
    header_dirty_ = true;
    auto slot = sigc::mem_fun(*this, &MonitorWindow::on_connected);
    if (opt_.bus_address)
        Gio::DBus::Connection::create_for_address(*opt_.bus_address, slot,
                                                  Gio::DBus::ConnectionFlags::AUTHENTICATION_CLIENT |
                                                      Gio::DBus::ConnectionFlags::MESSAGE_BUS_CONNECTION);
    else
        Gio::DBus::Connection::get(Gio::DBus::BusType::SYSTEM, slot);
}

void MonitorWindow::on_connected(const Glib::RefPtr<Gio::AsyncResult>& res)
{
    try {
        bus_ = opt_.bus_address ? Gio::DBus::Connection::create_for_address_finish(res)
                                : Gio::DBus::Connection::get_finish(res);
    } catch (const Glib::Error& e) {
        model_.state = monitor::DaemonState::not_running;
        model_.message = "cannot connect to the system bus: " + std::string(e.what()) + " (trying again)";
        header_dirty_ = true;
        retry_timer_ = Glib::signal_timeout().connect_seconds(
        [this] {
            connect_bus();
            return false;
        },
        2);
        return;
    }
    // The shared system-bus connection would end the process when the bus
    // goes away; this window retries instead.
    bus_->set_exit_on_close(false);
    bus_->signal_closed().connect(sigc::mem_fun(*this, &MonitorWindow::on_bus_closed));
    auto slot = sigc::mem_fun(*this, &MonitorWindow::on_signal);
    // The subscription's signals come addressed to this connection from
    // their own object path; the broadcast ones on the main path (which
    // the bus policy keeps from ordinary users) are not listened to, so an
    // admin does not see every event twice.
    signal_ids_.push_back(bus_->signal_subscribe(slot, bus_name, iface, "Deleted", subscription_path));
    signal_ids_.push_back(bus_->signal_subscribe(slot, bus_name, iface, "Summary", subscription_path));
    signal_ids_.push_back(bus_->signal_subscribe(slot, bus_name, props_iface, "PropertiesChanged", object_path));
    watch_id_ = Gio::DBus::watch_name(
        bus_, bus_name,
        [this](const Glib::RefPtr<Gio::DBus::Connection>&, const Glib::ustring&, const Glib::ustring& owner) {
            on_appeared(owner);
        },
        [this](const Glib::RefPtr<Gio::DBus::Connection>&, const Glib::ustring&) { on_vanished(); });
}

void MonitorWindow::on_bus_closed(bool, const Glib::Error&)
{
    if (watch_id_)
        Gio::DBus::unwatch_name(watch_id_);
    watch_id_ = 0;
    signal_ids_.clear();
    bus_.reset();
    ++epoch_;
    model_.state = monitor::DaemonState::not_running;
    model_.message = "the system bus connection was lost (trying again)";
    header_dirty_ = true;
    retry_timer_ = Glib::signal_timeout().connect_seconds(
        [this] {
            connect_bus();
            return false;
        },
        2);
}

void MonitorWindow::call(const char* method, GVariant* args, const char* iface_name, const std::string& reply,
                         Reply on_reply, Failure on_error, Gio::DBus::CallFlags flags, int timeout_ms)
{
    if (!bus_) {
        if (args)
            g_variant_unref(g_variant_ref_sink(args));
        return;
    }
    Glib::VariantContainerBase params;
    if (args)
        params = Glib::VariantContainerBase(args, false);   // floating: the wrapper sinks it
    const unsigned epoch = epoch_;
    auto bus = bus_;
    bus_->call(
        object_path, iface_name, method, params,
        [this, bus, epoch, on_reply = std::move(on_reply), on_error = std::move(on_error)](
            const Glib::RefPtr<Gio::AsyncResult>& res) {
            try {
                auto body = bus->call_finish(res);
                if (epoch == epoch_ && on_reply)
                    on_reply(body.gobj());
            } catch (const Glib::Error& e) {
                if (epoch == epoch_ && on_error)
                    on_error(error_text(e));
            }
        },
        bus_name, timeout_ms, flags, Glib::VariantType(reply));
}

void MonitorWindow::on_appeared(const Glib::ustring& owner)
{
    owner_ = owner;
    ++epoch_;
    model_.state = monitor::DaemonState::running;
    model_.message.clear();
    header_dirty_ = true;
    props_in_flight_ = top_in_flight_ = false;
    // Subscribe first, then read the recent events: what is signalled in
    // between is both in the answer and in the signals, and join_recent
    // keeps it once.
    loading_events_ = true;
    early_events_.clear();
    call("Subscribe", nullptr, iface, reply_type("Subscribe"), nullptr, [this](const std::string& err) {
        model_.message = "Subscribe failed, no live deletions: " + err;
        header_dirty_ = true;
    });
    call(
        "GetRecentEvents", g_variant_new("(u)", static_cast<guint32>(std::min<std::size_t>(opt_.rows, 1024))), iface,
        reply_type("GetRecentEvents"),
        [this](GVariant* body) {
            GVariant* arr = g_variant_get_child_value(body, 0);
            std::vector<monitor::EventRow> recent;
            GVariantIter it;
            g_variant_iter_init(&it, arr);
            while (GVariant* rec = g_variant_iter_next_value(&it)) {
                recent.push_back(event_of(rec));
                g_variant_unref(rec);
            }
            g_variant_unref(arr);
            for (auto& e : monitor::Model::join_recent(recent, early_events_))
                model_.add_event(std::move(e));
            early_events_.clear();
            loading_events_ = false;
        },
        [this](const std::string&) {
            for (auto& e : early_events_)
                model_.add_event(std::move(e));
            early_events_.clear();
            loading_events_ = false;
        });
    fetch_properties();
    fetch_top();
    if (opt_.apply_filters_given) {
        opt_.apply_filters_given = false;
        set_filter_text(opt_.apply_filters);
        filters_edited_ = true;
        on_apply();
    }
}

void MonitorWindow::on_vanished()
{
    ++epoch_;
    owner_.clear();
    loading_events_ = false;
    early_events_.clear();
    model_.state = monitor::DaemonState::not_running;
    model_.message = bus_ ? "unlinkd is not running: nobody owns org.unlinkd.Unlinkd1 on the system bus. "
                            "This window picks up again when it starts."
                          : model_.message;
    // The counts belonged to the daemon that left; a new one reports its own.
    model_.clear_processes();
    model_.header.total_deletes = model_.header.total_failures = model_.header.lost_events =
        model_.header.suppressed_signals = 0;
    model_.header.attach_mode.clear();
    processes_dirty_ = header_dirty_ = true;
}

void MonitorWindow::on_signal(const Glib::RefPtr<Gio::DBus::Connection>&, const Glib::ustring& sender,
                              const Glib::ustring& path, const Glib::ustring&, const Glib::ustring& member,
                              const Glib::VariantContainerBase& params)
{
    // GDBus matches the well-known name; this also holds the unique name
    // to the owner the watch reported.
    if (owner_.empty() || (!sender.empty() && sender.raw() != owner_))
        return;
    GVariant* p = const_cast<GVariant*>(params.gobj());
    const std::string type = g_variant_get_type_string(p);
    if (path == subscription_path && member == "Deleted") {
        if (type != signal_type("Deleted"))
            return;
        auto e = event_of(p);
        if (loading_events_)
            early_events_.push_back(std::move(e));
        else
            model_.add_event(std::move(e));
    } else if (path == subscription_path && member == "Summary") {
        if (type != signal_type("Summary"))
            return;
        GVariant* arr = g_variant_get_child_value(p, 0);
        model_.merge_processes(processes_of(arr));
        g_variant_unref(arr);
        processes_dirty_ = true;
    } else if (member == "PropertiesChanged" && type == "(sa{sv}as)") {
        const char* which = nullptr;
        GVariant* changed = nullptr;
        GVariantIter* invalidated = nullptr;
        g_variant_get(p, "(&s@a{sv}as)", &which, &changed, &invalidated);
        if (which && std::strcmp(which, iface) == 0)
            apply_properties(changed);
        bool refetch = g_variant_iter_n_children(invalidated) > 0;
        g_variant_unref(changed);
        g_variant_iter_free(invalidated);
        if (refetch)
            fetch_properties();
    }
}

void MonitorWindow::apply_properties(GVariant* dict)
{
    auto& h = model_.header;
    GVariantIter it;
    g_variant_iter_init(&it, dict);
    const char* key = nullptr;
    GVariant* value = nullptr;
    while (g_variant_iter_next(&it, "{&sv}", &key, &value)) {
        std::string k = key, t = g_variant_get_type_string(value);
        if (t == "s" && k == "Version")
            h.version = g_variant_get_string(value, nullptr);
        else if (t == "s" && k == "AttachMode")
            h.attach_mode = g_variant_get_string(value, nullptr);
        else if (t == "s" && k == "RequestedAttachMode")
            h.requested_mode = g_variant_get_string(value, nullptr);
        else if (t == "t" && k == "TotalDeletes")
            h.total_deletes = g_variant_get_uint64(value);
        else if (t == "t" && k == "TotalFailures")
            h.total_failures = g_variant_get_uint64(value);
        else if (t == "t" && k == "LostEvents")
            h.lost_events = g_variant_get_uint64(value);
        else if (t == "t" && k == "SuppressedSignals")
            h.suppressed_signals = g_variant_get_uint64(value);
        else if (t == "as" && k == "Filters") {
            std::vector<std::string> rules;
            GVariantIter ri;
            g_variant_iter_init(&ri, value);
            while (GVariant* r = g_variant_iter_next_value(&ri))
                rules.push_back(take_string(r));
            if (rules != h.filters || !filters_edited_) {
                h.filters = rules;
                // The editor follows the daemon until the user edits it.
                if (!filters_edited_)
                    set_filter_text(rules);
            }
        }
        g_variant_unref(value);
    }
    header_dirty_ = true;
}

void MonitorWindow::fetch_properties()
{
    if (props_in_flight_)
        return;
    props_in_flight_ = true;
    call(
        "GetAll", g_variant_new("(s)", iface), props_iface, "(a{sv})",
        [this](GVariant* body) {
            props_in_flight_ = false;
            GVariant* dict = g_variant_get_child_value(body, 0);
            apply_properties(dict);
            g_variant_unref(dict);
        },
        [this](const std::string&) { props_in_flight_ = false; });
}

void MonitorWindow::fetch_top()
{
    if (top_in_flight_)
        return;
    top_in_flight_ = true;
    call(
        "GetTopProcesses", g_variant_new("(u)", static_cast<guint32>(opt_.top)), iface, reply_type("GetTopProcesses"),
        [this](GVariant* body) {
            top_in_flight_ = false;
            GVariant* arr = g_variant_get_child_value(body, 0);
            model_.replace_processes(processes_of(arr));
            g_variant_unref(arr);
            processes_dirty_ = true;
        },
        [this](const std::string&) { top_in_flight_ = false; });
}

bool MonitorWindow::on_refresh()
{
    if (model_.state == monitor::DaemonState::running) {
        fetch_properties();
        if (++refresh_count_ % top_every == 0)
            fetch_top();
    }
    return true;
}

// ---- UI updates, batched

bool MonitorWindow::on_flush()
{
    auto f = model_.flush_events();
    if (f.removed_oldest || !f.added.empty()) {
        // Newest first in the view: the oldest rows are at the end.
        const guint n = event_store_->get_n_items();
        const guint removed = static_cast<guint>(std::min<std::size_t>(f.removed_oldest, n));
        std::vector<Glib::RefPtr<Row>> fresh;
        fresh.reserve(f.added.size());
        for (auto it = f.added.rbegin(); it != f.added.rend(); ++it)
            fresh.push_back(Row::create(cells_of(*it)));
        if (removed)
            event_store_->splice(n - removed, removed, {});
        event_store_->splice(0, 0, fresh);
        events_title_.set_markup("<b>Live deletions</b> (newest first; " + std::to_string(model_.events().size()) +
                                 " shown of " + std::to_string(model_.events_received()) + " received, at most " +
                                 std::to_string(model_.max_events()) + " kept)");
    }
    if (processes_dirty_) {
        processes_dirty_ = false;
        std::vector<Glib::RefPtr<Row>> rows;
        for (const auto& p : model_.top())
            rows.push_back(Row::create(cells_of(p)));
        proc_store_->splice(0, proc_store_->get_n_items(), rows);
    }
    if (header_dirty_)
        update_header();
    return true;
}

void MonitorWindow::update_header()
{
    header_dirty_ = false;
    const auto& h = model_.header;
    banner_.remove_css_class("banner-down");
    banner_.remove_css_class("banner-up");
    banner_.remove_css_class("banner-wait");
    switch (model_.state) {
    case monitor::DaemonState::running:
        banner_.add_css_class("banner-up");
        banner_.set_text("unlinkd " + h.version + " is running" + (model_.message.empty() ? "" : ": " + model_.message));
        break;
    case monitor::DaemonState::not_running:
        banner_.add_css_class("banner-down");
        banner_.set_text(model_.message.empty() ? "unlinkd is not running" : model_.message);
        break;
    case monitor::DaemonState::connecting:
        banner_.add_css_class("banner-wait");
        banner_.set_text(model_.message);
        break;
    }
    const bool up = model_.state == monitor::DaemonState::running;
    mode_label_.set_text(up && !h.attach_mode.empty()
                             ? h.attach_mode + (h.requested_mode.empty() ? "" : " (asked: " + h.requested_mode + ")")
                             : "-");
    deletes_label_.set_text(up ? std::to_string(h.total_deletes) : "-");
    failures_label_.set_text(up ? std::to_string(h.total_failures) : "-");
    lost_label_.set_text(up ? std::to_string(h.lost_events) : "-");
    suppressed_label_.set_text(up ? std::to_string(h.suppressed_signals) : "-");
    apply_button_.set_sensitive(up && !apply_in_flight_);
}

void MonitorWindow::set_filter_text(const std::vector<std::string>& rules)
{
    std::string text;
    for (const auto& r : rules)
        text += r + "\n";
    filter_view_.get_buffer()->set_text(text);
    filters_edited_ = false;
}

void MonitorWindow::on_revert()
{
    set_filter_text(model_.header.filters);
    model_.filter_status.clear();
    filter_status_.set_text("");
    filter_status_.set_visible(false);
}

void MonitorWindow::on_apply()
{
    std::vector<std::string> rules;
    const std::string text = filter_view_.get_buffer()->get_text();
    std::size_t start = 0;
    while (start <= text.size()) {
        auto end = text.find('\n', start);
        std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
        auto b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
        if (b != std::string::npos)
            rules.push_back(line.substr(b, e - b + 1));
        if (end == std::string::npos)
            break;
        start = end + 1;
    }
    GVariantBuilder b;
    g_variant_builder_init(&b, G_VARIANT_TYPE("as"));
    for (const auto& r : rules)
        g_variant_builder_add(&b, "s", r.c_str());
    apply_in_flight_ = true;
    apply_button_.set_sensitive(false);
    model_.filter_status = "applying (the daemon may ask for authorization)";
    filter_status_.remove_css_class("error");
    filter_status_.remove_css_class("ok");
    filter_status_.set_text("Filters: " + model_.filter_status);
    filter_status_.set_visible(true);
    // Interactive authorization: polkit may ask for a password, which
    // takes as long as the person needs, so no call timeout.
    call(
        "SetFilters", g_variant_new("(as)", &b), iface, reply_type("SetFilters"),
        [this](GVariant*) {
            apply_in_flight_ = false;
            model_.filter_status = "applied";
            filter_status_.add_css_class("ok");
            filter_status_.set_text("Filters: applied.");
            filters_edited_ = false;
            header_dirty_ = true;
            fetch_properties();
        },
        [this](const std::string& err) {
            apply_in_flight_ = false;
            model_.filter_status = err;
            filter_status_.add_css_class("error");
            filter_status_.set_text("Filters not applied: " + err);
            header_dirty_ = true;
        },
        Gio::DBus::CallFlags::NO_AUTO_START | Gio::DBus::CallFlags::ALLOW_INTERACTIVE_AUTHORIZATION, G_MAXINT);
}

void MonitorWindow::write_dump()
{
    if (!opt_.dump_state)
        return;
    on_flush();   // the dump shows what the window shows now
    auto j = model_.dump();
    static unsigned long seq = 0;
    j["seq"] = ++seq;
    j["pid"] = static_cast<long>(getpid());
    const std::string tmp = *opt_.dump_state + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << j.dump(2) << "\n";
        if (!out) {
            std::cerr << "unlinkd-monitor: cannot write " << tmp << ": " << std::strerror(errno) << "\n";
            return;
        }
    }
    // Renamed into place: a reader never sees half a file.
    if (std::rename(tmp.c_str(), opt_.dump_state->c_str()) != 0)
        std::cerr << "unlinkd-monitor: cannot rename " << tmp << ": " << std::strerror(errno) << "\n";
}

bool MonitorWindow::take_screenshot()
{
    on_flush();
    const int w = get_width(), h = get_height();
    auto* native = GTK_NATIVE(gobj());
    GskRenderer* renderer = native ? gtk_native_get_renderer(native) : nullptr;
    if (w <= 0 || h <= 0 || !renderer) {
        std::cerr << "unlinkd-monitor: the window is not shown yet, no screenshot\n";
        return false;
    }
    GdkPaintable* paintable = gtk_widget_paintable_new(GTK_WIDGET(gobj()));
    GtkSnapshot* snap = gtk_snapshot_new();
    gdk_paintable_snapshot(paintable, GDK_SNAPSHOT(snap), w, h);
    GskRenderNode* node = gtk_snapshot_free_to_node(snap);
    bool ok = false;
    if (node) {
        graphene_rect_t area;
        graphene_rect_init(&area, 0, 0, static_cast<float>(w), static_cast<float>(h));
        GdkTexture* texture = gsk_renderer_render_texture(renderer, node, &area);
        ok = texture && gdk_texture_save_to_png(texture, opt_.screenshot->c_str());
        if (texture)
            g_object_unref(texture);
        gsk_render_node_unref(node);
    }
    g_object_unref(paintable);
    if (!ok)
        std::cerr << "unlinkd-monitor: could not write " << *opt_.screenshot << "\n";
    return ok;
}

}  // namespace

int main(int argc, char** argv)
{
    auto opt = parse_args(argc, argv);
    if (!opt)
        return 2;
    // NON_UNIQUE: a second window (another user's, a test's) is its own process.
    auto app = Gtk::Application::create("org.unlinkd.Monitor", Gio::Application::Flags::NON_UNIQUE);
    MonitorWindow* window = nullptr;
    int status = 0;
    app->signal_activate().connect([&] {
        if (window) {
            window->present();
            return;
        }
        window = new MonitorWindow(*opt, app);
        app->add_window(*window);
        window->signal_hide().connect([&] {
            window->write_dump();
            app->quit();
        });
        window->present();
        // A first dump at once: its file says the signal handlers are in
        // place (a SIGUSR1 before them would end the process).
        window->write_dump();
        if (opt->after >= 0)
            Glib::signal_timeout().connect_once(
                [&] {
                    if (opt->screenshot && !window->take_screenshot())
                        status = 1;
                    window->write_dump();
                    app->quit();
                },
                static_cast<unsigned>(opt->after * 1000));
    });
    // SIGUSR1: write the dump now (a test polls with it); TERM and INT: write it and quit.
    struct Ctx {
        MonitorWindow** window;
        Glib::RefPtr<Gtk::Application> app;
    } ctx{&window, app};
    g_unix_signal_add(
        SIGUSR1,
        [](gpointer data) -> gboolean {
            auto* c = static_cast<Ctx*>(data);
            if (*c->window)
                (*c->window)->write_dump();
            return G_SOURCE_CONTINUE;
        },
        &ctx);
    for (int sig : {SIGTERM, SIGINT})
        g_unix_signal_add(
            sig,
            [](gpointer data) -> gboolean {
                auto* c = static_cast<Ctx*>(data);
                if (*c->window)
                    (*c->window)->write_dump();
                c->app->quit();
                return G_SOURCE_CONTINUE;
            },
            &ctx);
    // Our options are parsed above; GApplication sees none of them.
    char* app_argv[] = {argv[0], nullptr};
    int rc = app->run(1, app_argv);
    delete window;
    return rc ? rc : status;
}
