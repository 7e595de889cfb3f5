# Included by CMake right after its C language defaults (CMAKE_USER_MAKE_RULES_OVERRIDE_C):
# object files are named *.c.obj, as in ESP-IDF builds.
set(CMAKE_C_OUTPUT_EXTENSION .obj)
