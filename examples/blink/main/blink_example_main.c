/*
 * Blink: toggles one GPIO forever.
 *
 * The LED pin and the period come from menuconfig ("Example Configuration"):
 * CONFIG_BLINK_GPIO and CONFIG_BLINK_PERIOD.
 */
#include <stdbool.h>
#include <stdint.h>
#include "driver/gpio.h"
#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "sdkconfig.h"

#define LED_GPIO ((gpio_num_t)CONFIG_BLINK_GPIO)

static const char *TAG = "blink";

static bool s_led_on;

static void configure_led(void)
{
    ESP_LOGI(TAG, "Configuring GPIO %d as the LED output", CONFIG_BLINK_GPIO);
    gpio_reset_pin(LED_GPIO);
    gpio_set_direction(LED_GPIO, GPIO_MODE_OUTPUT);
}

static void set_led(bool on)
{
    gpio_set_level(LED_GPIO, on ? 1 : 0);
}

void app_main(void)
{
    configure_led();
    for (;;) {
        s_led_on = !s_led_on;
        ESP_LOGI(TAG, "LED %s", s_led_on ? "ON" : "OFF");
        set_led(s_led_on);
        vTaskDelay(pdMS_TO_TICKS(CONFIG_BLINK_PERIOD));
    }
}
