/* ESP-IDF stand-in: host GPIO driver keeping pin state in memory. */
#include "driver/gpio.h"

static uint8_t s_level[GPIO_NUM_MAX];
static uint8_t s_mode[GPIO_NUM_MAX];

static int valid(gpio_num_t n)
{
    return n >= 0 && n < GPIO_NUM_MAX;
}

esp_err_t gpio_reset_pin(gpio_num_t gpio_num)
{
    if (!valid(gpio_num)) {
        return ESP_ERR_INVALID_ARG;
    }
    s_level[gpio_num] = 0;
    s_mode[gpio_num] = GPIO_MODE_DISABLE;
    return ESP_OK;
}

esp_err_t gpio_set_direction(gpio_num_t gpio_num, gpio_mode_t mode)
{
    if (!valid(gpio_num)) {
        return ESP_ERR_INVALID_ARG;
    }
    s_mode[gpio_num] = (uint8_t)mode;
    return ESP_OK;
}

esp_err_t gpio_set_level(gpio_num_t gpio_num, uint32_t level)
{
    if (!valid(gpio_num)) {
        return ESP_ERR_INVALID_ARG;
    }
    s_level[gpio_num] = level ? 1 : 0;
    return ESP_OK;
}

int gpio_get_level(gpio_num_t gpio_num)
{
    return valid(gpio_num) ? s_level[gpio_num] : 0;
}

esp_err_t gpio_set_pull_mode(gpio_num_t gpio_num, gpio_pull_mode_t pull)
{
    (void)pull;
    return valid(gpio_num) ? ESP_OK : ESP_ERR_INVALID_ARG;
}
