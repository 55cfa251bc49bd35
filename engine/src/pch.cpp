// Compiled only to produce the shared precompiled header (see engine/CMakeLists.txt).
