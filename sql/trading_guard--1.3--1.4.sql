/* trading_guard--1.3--1.4.sql — 1.4 closes the findings of the security review */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION trading_guard UPDATE TO '1.4'" to load this file. \quit

