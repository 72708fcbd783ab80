// stock-cpp: `stock-cpp server ARGS...` or `stock-cpp client ARGS...`.
#include <cstdio>
#include <cstring>

#include "common.h"

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "server") == 0) {
    return stock::RunServer(argc - 2, argv + 2);
  }
  if (argc >= 2 && std::strcmp(argv[1], "client") == 0) {
    return stock::RunClient(argc - 2, argv + 2);
  }
  std::fprintf(stderr, "usage: stock-cpp server|client ARGS...\n");
  return 2;
}
