"""The Python baseline for `make bench` (benches/driver.rs): a straightforward
Selenium script doing chatprobe's send flow against the same testbed —
log in two browsers, open the chats, then for every file: upload it, wait
until the sender's view shows it, send a sentinel text, wait until it shows,
and poll the receiver's view until the file appears. Same Chromium, same
flags, same 100 ms polling. Prints `seconds_per_send X`.

Usage: python3 driver_python.py BASE_URL CHROMEDRIVER FILELIST
"""
import sys
import time
import uuid

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

POLL = 0.1


def browser(driver_path, profile):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", "--window-size=1280,900", f"--user-data-dir={profile}"]:
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def login(d, base, user):
    d.get(base + "/")
    WebDriverWait(d, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#login"))
    d.find_element(By.CSS_SELECTOR, "#login").send_keys(user)
    d.find_element(By.CSS_SELECTOR, "#password").send_keys("testbed-" + user)
    d.find_element(By.CSS_SELECTOR, "#login-button").click()
    WebDriverWait(d, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#contacts li"))


def shows(d, attr, value):
    for m in d.find_elements(By.CSS_SELECTOR, ".msg"):
        if attr == "text":
            t = m.find_elements(By.CSS_SELECTOR, ".text")
            if t and t[0].text.strip() == value:
                return True
        elif m.get_attribute(attr) == value:
            return True
    return False


def wait_until(d, attr, value, timeout=15):
    t0 = time.time()
    while not shows(d, attr, value):
        if time.time() - t0 > timeout:
            raise RuntimeError(f"{value} never showed")
        time.sleep(POLL)


def main():
    base, driver_path, listfile = sys.argv[1:4]
    files = [l for l in open(listfile).read().split("\n") if l]
    a = browser(driver_path, f"/tmp/cp-bench-a-{uuid.uuid4().hex}")
    b = browser(driver_path, f"/tmp/cp-bench-b-{uuid.uuid4().hex}")
    try:
        login(a, base, "alice")
        login(b, base, "bob")
        a.find_element(By.CSS_SELECTOR, "#chat-direct_bob").click()
        b.find_element(By.CSS_SELECTOR, "#chat-direct_alice").click()
        t0 = time.time()
        for f in files:
            name = f.rsplit("/", 1)[-1]
            a.find_element(By.CSS_SELECTOR, "#file-input").send_keys(f)
            wait_until(a, "data-filename", name)
            sentinel = "sentinel " + uuid.uuid4().hex[:12]
            a.find_element(By.CSS_SELECTOR, "#text-input").send_keys(sentinel)
            a.find_element(By.CSS_SELECTOR, "#send-button").click()
            wait_until(a, "text", sentinel)
            wait_until(b, "data-filename", name)
        dt = time.time() - t0
    finally:
        a.quit()
        b.quit()
    print(f"seconds_per_send {dt / len(files):.4f}")


if __name__ == "__main__":
    main()
