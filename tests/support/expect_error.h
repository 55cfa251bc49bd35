#pragma once

// Shared by the test suites: an exception's type and the words its message must contain.

#include <gtest/gtest.h>

#include <functional>
#include <initializer_list>
#include <string>

/// Expects `f` to throw exactly E (or a subclass) whose message contains each of `parts`.
template <class E>
void expectError(const std::function<void()>& f, std::initializer_list<std::string> parts) {
    try {
        f();
        ADD_FAILURE() << "no exception was thrown";
    } catch (const E& e) {
        const std::string message = e.what();
        for (const auto& part : parts)
            EXPECT_NE(message.find(part), std::string::npos) << "message: " << message << "\nlacks: " << part;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "wrong exception type; message: " << e.what();
    }
}
