// The plain regression runner of the fuzz targets (systemd's fuzz-main
// pattern): linked in the normal build instead of libFuzzer, it feeds every
// file named on the command line (every file of a named directory) to
// LLVMFuzzerTestOneInput once. A finding aborts through FUZZ_CHECK or a
// crash; the meson test fails with the file's name printed before it.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "fuzz.h"

int main(int argc, char** argv)
{
    namespace fs = std::filesystem;
    std::vector<fs::path> files;
    for (int a = 1; a < argc; ++a) {
        fs::path p = argv[a];
        if (fs::is_directory(p)) {
            for (const auto& entry : fs::directory_iterator(p))
                if (entry.is_regular_file())
                    files.push_back(entry.path());
        } else {
            files.push_back(p);
        }
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
        std::fprintf(stderr, "no input files\n");
        return 1;
    }
    for (const auto& f : files) {
        std::fprintf(stderr, "%s\n", f.c_str());
        std::ifstream in(f, std::ios::binary);
        std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!in.eof() && in.fail()) {
            std::fprintf(stderr, "cannot read %s\n", f.c_str());
            return 1;
        }
        LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    }
    std::printf("%zu inputs ok\n", files.size());
    return 0;
}
